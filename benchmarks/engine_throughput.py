"""How fast the engine trains, measured against this machine's own matrix-multiply peak.

Prints, from one run: the two-thread float32 matrix multiply (sgemm) rate of NumPy's BLAS,
then training examples per second for 3Blue1Brown's 784-16-16-10 sigmoid network at batch 100
and for a 784-256-128-10 ReLU network at batch 256 (with SGD, then with Adam). A training
step here is everything ``Trainer.step`` does: gather the shuffled mini-batch, forward,
backward, gradient statistics, the optimiser step, and the test-set evaluation at each epoch
end. Each rate is also given in GFLOP/s (6 FLOPs per weight per example: 2 forward, 2 for
dC/dW, 2 for dC/da) and as a fraction of the sgemm peak. That count is a convention: neither
the engine nor PyTorch computes dC/da for the input layer, which nothing uses, so the share of
the peak counting only the products done is printed beside it. If PyTorch is importable, the
same networks are timed in PyTorch on the CPU in the same run, with the ratio.

The machine is shared, so each figure is the best of several repeats (the least disturbed);
the median is printed beside it, and the engine's and PyTorch's epochs alternate so that a
passing load falls on both. Nothing here passes or fails.

By default the script re-runs itself without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, so that
OpenBLAS picks the kernel for this CPU; ``--keep-openblas-env`` measures with them as set.

    python benchmarks/engine_throughput.py [--data-dir DIR] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from engine.data.mnist import load_dataset
from engine.training import TrainConfig, Trainer, blas_threads

OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
LARGE = {"hidden": (256, 128), "activation": "relu", "loss": "cross-entropy", "batch_size": 256}
NETWORKS = {
    "784-16-16-10 sigmoid, mse, sgd, batch 100": TrainConfig(),
    "784-256-128-10 relu, cross-entropy, sgd, batch 256": TrainConfig(**LARGE, lr=0.1),
    # Adam's update is a dozen element-wise passes over every parameter: memory-bound work
    # that no BLAS speeds up, shown separately so the line above measures the maths.
    "784-256-128-10 relu, cross-entropy, adam, batch 256": TrainConfig(
        **LARGE, optimizer="adam", lr=0.001
    ),
}


def default_data_dir() -> Path | None:
    """The full MNIST kept beside the repository for benchmarks, if it is there."""
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
    return shared if shared.is_dir() else None


def best_and_median(samples: list[float]) -> tuple[float, float]:
    return max(samples), statistics.median(samples)


class Sgemm:
    """Times float32 ``size``×``size`` matrix products (2·n³ FLOPs each) on demand."""

    def __init__(self, size: int = 2048) -> None:
        rng = np.random.default_rng(0)
        self.size = size
        self.a, self.b = (rng.random((size, size), dtype=np.float32) for _ in range(2))
        self.out = np.empty_like(self.a)

    def gflops(self, threads: int, products: int = 3) -> float:
        with threadpool_limits(threads, user_api="blas"):
            np.matmul(self.a, self.b, out=self.out)
            start = time.perf_counter()
            for _ in range(products):
                np.matmul(self.a, self.b, out=self.out)
            seconds = time.perf_counter() - start
        return products * 2 * self.size**3 / seconds / 1e9


def engine_epochs(config: TrainConfig, dataset) -> Callable[[], float]:
    """A function that trains one more epoch of ``Trainer.step`` and returns its examples per
    second (after a first epoch of warm-up that pages in the buffers and the data)."""
    trainer = Trainer(TrainConfig.from_dict({**config.to_dict(), "epochs": 1000}), dataset)
    for _ in range(trainer.batches_per_epoch):
        trainer.step()

    def epoch() -> float:
        start, seen = time.perf_counter(), trainer.progress.examples_seen
        report = trainer.step()
        while report.evaluation is None:
            report = trainer.step()
        return (trainer.progress.examples_seen - seen) / (time.perf_counter() - start)

    return epoch


def torch_epochs(config: TrainConfig, dataset) -> Callable[[], float] | None:
    """The same network, loss, optimiser and batch in PyTorch on the CPU: a function that
    trains one more epoch and returns its examples per second. None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(config.seed)
    activation = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}
    layers: list[torch.nn.Module] = []
    sizes = config.layer_sizes
    for index, (n_in, n_out) in enumerate(pairwise(sizes)):
        layers.append(torch.nn.Linear(n_in, n_out))
        if index < len(sizes) - 2:
            layers.append(activation[config.activation]())
    if config.loss == "mse":
        layers.append(torch.nn.Sigmoid())
    model = torch.nn.Sequential(*layers)
    optimizers = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
    optimizer = optimizers[config.optimizer](model.parameters(), lr=config.lr)
    train_images = torch.from_numpy(dataset.train_images)
    train_labels = torch.from_numpy(dataset.train_labels.astype(np.int64))
    test_images = torch.from_numpy(dataset.test_images)
    targets = torch.eye(10)

    def cost(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if config.loss == "mse":
            return 0.5 * ((output - targets[labels]) ** 2).sum(dim=1).mean()
        return torch.nn.functional.cross_entropy(output, labels)

    def epoch() -> float:
        start = time.perf_counter()
        order = torch.randperm(len(train_images))
        for first in range(0, len(order), config.batch_size):
            indices = order[first : first + config.batch_size]
            optimizer.zero_grad(set_to_none=False)
            loss = cost(model(train_images[indices]), train_labels[indices])
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            model(test_images).argmax(dim=1)
        return len(order) / (time.perf_counter() - start)

    epoch()  # warm-up
    print(f"  (PyTorch {torch.__version__}, {torch.get_num_threads()} threads)")
    return epoch


def report(label: str, rates: list[float], extra: Callable[[float], str] = lambda _: "") -> float:
    best, median = best_and_median(rates)
    print(f"  {label:<9} {best:>11,.0f} examples/s (median {median:,.0f}){extra(best)}")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        default=None,
        help="MNIST directory (default: ../shared/data/mnist if there, else as `train`)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="measurements per figure")
    parser.add_argument(
        "--keep-openblas-env", action="store_true", help="keep OPENBLAS_CORETYPE/_L2_SIZE"
    )
    args = parser.parse_args()
    overridden = [name for name in OPENBLAS_OVERRIDES if name in os.environ]
    if overridden and not args.keep_openblas_env:
        env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_OVERRIDES}
        print(f"re-running without {', '.join(overridden)} so OpenBLAS picks its own kernel")
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], env)

    blas = next(info for info in threadpool_info() if info["user_api"] == "blas")
    settings = ", ".join(
        f"{name}={os.environ[name]}" for name in OPENBLAS_OVERRIDES if name in os.environ
    )
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(
        f"BLAS: {blas['internal_api']} {blas.get('version')} kernel {blas.get('architecture')}, "
        f"{blas['num_threads']} threads ({settings or 'no OPENBLAS overrides'})"
    )
    dataset = load_dataset(args.data_dir or default_data_dir())
    print(f"data: {dataset.source} ({dataset.train_size:,} train, {dataset.test_size:,} test)")

    sgemm = Sgemm()
    peaks = [sgemm.gflops(2) for _ in range(args.repeats)]
    single = max(sgemm.gflops(1) for _ in range(args.repeats))
    peak, peak_median = best_and_median(peaks)
    print(
        f"sgemm 2048³ float32: {peak:,.0f} GFLOP/s with 2 threads (median {peak_median:,.0f}), "
        f"{single:,.0f} with 1"
    )
    if peak < 1.5 * single:
        print("warning: two threads barely beat one: the other core is busy, figures are low")

    for name, config in NETWORKS.items():
        threads = blas_threads(config.layer_sizes, config.batch_size) or "all"
        print(f"{name} (engine uses {threads} BLAS thread(s)):")
        weights = [a * b for a, b in pairwise(config.layer_sizes)]
        flops_per_example = 6 * sum(weights)
        computed = flops_per_example - 2 * weights[0]  # no dC/da for the input layer
        engine_epoch, torch_epoch = engine_epochs(config, dataset), torch_epochs(config, dataset)
        # One engine epoch, then one PyTorch epoch, then the next pair: a load that comes and
        # goes on the shared machine falls on both alike.
        peaks, rates, torch_rates, loads = [], [], [], []
        for _ in range(args.repeats):
            peaks.append(sgemm.gflops(2))
            rates.append(engine_epoch())
            if torch_epoch is not None:
                torch_rates.append(torch_epoch())
            loads.append(os.getloadavg()[0])
        fractions = [flops_per_example * rate / 1e9 / peak for rate, peak in zip(rates, peaks)]
        best_rate, best_peak = max(zip(rates, peaks))

        def flops(rate: float, flops_per_example: int = flops_per_example) -> str:
            return f", {flops_per_example * rate / 1e9:,.1f} GFLOP/s"

        engine = report("engine", rates, flops)
        print(
            f"            = {flops_per_example * best_rate / 1e9 / best_peak:.0%} of the sgemm "
            f"rate measured just before that epoch ({best_peak:,.0f} GFLOP/s); "
            f"median over repeats {statistics.median(fractions):.0%}; "
            f"{computed * best_rate / 1e9 / best_peak:.0%} counting only the products done"
        )
        if torch_epoch is None:
            print("  PyTorch   not installed (it is never a dependency); no comparison")
        else:
            torch_best = report("PyTorch", torch_rates, flops)
            pairs = [rate / other for rate, other in zip(rates, torch_rates)]
            print(
                f"  engine / PyTorch: {engine / torch_best:.2f}× best against best, "
                f"{statistics.median(pairs):.2f}× median of the epoch pairs "
                f"(load average {min(loads):.2f}-{max(loads):.2f})"
            )


if __name__ == "__main__":
    main()
