"""Checkpoints: a run saved to one `.npz` file and loaded back, exactly.

A checkpoint holds a JSON header (format, config, architecture, progress counters, the
optimiser's step count and metadata) and the arrays: every weight and bias, and what the
optimiser remembers (momentum's velocities, Adam's moment estimates). Loading it and training
on gives the same weights, to the last bit, as never having stopped.

Files come from people and over HTTP, so loading trusts nothing: it never unpickles, it
bounds every array's size before reading it, and it checks every shape against the config.
Anything wrong is a :class:`CheckpointError` that says what.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import os
import tempfile
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np

from engine.data.mnist import Dataset
from engine.network import Network, views
from engine.optimizers import Optimizer, make_optimizer
from engine.training import ConfigError, Evaluation, Progress, TrainConfig, Trainer

FORMAT = "backprop-live checkpoint"
FORMAT_VERSION = 1
HEADER = "header"
# The largest legal network (4 x 512 hidden units) in float64, with Adam's two moment arrays,
# stays far below these bounds; anything larger is not one of ours.
MAX_MEMBERS = 64
MAX_MEMBER_BYTES = 16 * 2**20


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint; the message says what is wrong with it."""


@dataclass
class OptimizerState:
    """What the optimiser had learned about the gradients when the checkpoint was taken."""

    name: str
    lr: float  # the learning rate in use then, which may differ from config.lr
    steps: int
    arrays: dict[str, list[np.ndarray]] = field(default_factory=dict)


@dataclass
class Checkpoint:
    """A loaded checkpoint: enough to show the network or to resume its training."""

    network: Network
    config: TrainConfig
    progress: Progress
    metadata: dict[str, Any]
    optimizer: OptimizerState | None = None

    def trainer(self, dataset: Dataset) -> Trainer:
        """A :class:`Trainer` that carries on from where this checkpoint left off.

        Raises :class:`CheckpointError` when ``dataset`` is too small to hold the position
        the run stopped at (it was saved while training on a larger one).
        """
        trainer = Trainer(self.config, dataset, self.network, self.progress)
        if self.progress.batch_in_epoch >= trainer.batches_per_epoch:
            raise CheckpointError(
                f"the run stopped at mini-batch {self.progress.batch_in_epoch + 1} of an epoch, "
                f"but this dataset ({dataset.train_size:,} training digits) has only "
                f"{trainer.batches_per_epoch} mini-batches per epoch"
            )
        if self.optimizer is not None:
            trainer.optimizer.lr = self.optimizer.lr
            trainer.restore_optimizer(self.optimizer.steps, self.optimizer.arrays)
        return trainer


def parameters(network: Network) -> list[np.ndarray]:
    """The parameters in the order a checkpoint stores them and the optimiser's memory of them:
    every weight, then every bias."""
    return [*network.weights, *network.biases]


def per_parameter(
    state: dict[str, list[np.ndarray]], network: Network
) -> dict[str, list[np.ndarray]]:
    """An optimiser's memory as a checkpoint stores it: one array per weight and bias, shaped
    like it. A :class:`Trainer`'s optimiser keeps two vectors instead (all the weights, all the
    biases), which are cut here into those pieces; arrays already per parameter stay as they are.
    """
    shapes = [param.shape for param in parameters(network)]
    return {
        name: views(np.concatenate([np.ravel(array) for array in arrays]), shapes)
        for name, arrays in state.items()
    }


# Saving


def save_checkpoint(
    path: str | os.PathLike[str],
    network: Network,
    config: TrainConfig,
    progress: Progress | None = None,
    metadata: dict[str, Any] | None = None,
    optimizer: Optimizer | None = None,
) -> Path:
    """Write a checkpoint to ``path`` atomically and return the path.

    The file is written under a temporary name in the same directory, flushed to disk and
    renamed over ``path``: a crash or a full disk leaves the previous checkpoint intact, never
    half of a new one.
    """
    path = Path(path)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write_checkpoint(file, network, config, progress, metadata, optimizer)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(path.parent)
    return path


def checkpoint_bytes(
    network: Network,
    config: TrainConfig,
    progress: Progress | None = None,
    metadata: dict[str, Any] | None = None,
    optimizer: Optimizer | None = None,
) -> bytes:
    """The checkpoint as bytes, e.g. for a download."""
    buffer = io.BytesIO()
    write_checkpoint(buffer, network, config, progress, metadata, optimizer)
    return buffer.getvalue()


def save_trainer(
    path: str | os.PathLike[str], trainer: Trainer, metadata: dict[str, Any] | None = None
) -> Path:
    """Save everything a :class:`Trainer` needs to carry on (the inverse of
    :meth:`Checkpoint.trainer`), with the data set it trained on named in the metadata."""
    return save_checkpoint(path, *_trainer_parts(trainer, metadata), optimizer=trainer.optimizer)


def trainer_bytes(trainer: Trainer, metadata: dict[str, Any] | None = None) -> bytes:
    """:func:`save_trainer`'s checkpoint as bytes, e.g. for a download."""
    return checkpoint_bytes(*_trainer_parts(trainer, metadata), optimizer=trainer.optimizer)


def _trainer_parts(
    trainer: Trainer, metadata: dict[str, Any] | None
) -> tuple[Network, TrainConfig, Progress, dict[str, Any]]:
    described = {"dataset": trainer.dataset.name, **(metadata or {})}
    return trainer.network, trainer.config, trainer.progress, described


def write_checkpoint(
    file: IO[bytes],
    network: Network,
    config: TrainConfig,
    progress: Progress | None = None,
    metadata: dict[str, Any] | None = None,
    optimizer: Optimizer | None = None,
) -> None:
    """Write the checkpoint's `.npz` bytes to an open binary file."""
    _check_matches(network, config)
    progress = progress or Progress()
    arrays: dict[str, np.ndarray] = {}
    for layer, (w, b) in enumerate(zip(network.weights, network.biases)):
        arrays[f"weight_{layer}"] = w
        arrays[f"bias_{layer}"] = b
    optimizer_header = None
    if optimizer is not None:
        state = per_parameter(optimizer.state(), network)
        optimizer_header = {
            "name": config.optimizer,
            "lr": optimizer.lr,
            "steps": optimizer.steps,
            "arrays": {name: len(values) for name, values in state.items()},
        }
        for name, values in state.items():
            for index, value in enumerate(values):
                arrays[f"optimizer_{name}_{index}"] = value
    header = {
        "format": FORMAT,
        "metadata": {
            **(metadata or {}),
            "format_version": FORMAT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "dataset": (metadata or {}).get("dataset"),
        },
        "config": config.to_dict(),
        "network": {
            "layer_sizes": list(network.layer_sizes),
            "activation": network.activation,
            "loss": network.loss,
            "dtype": network.dtype.name,
        },
        "progress": {
            **asdict(progress),
            "evaluations": [asdict(evaluation) for evaluation in progress.evaluations],
        },
        "optimizer": optimizer_header,
    }
    arrays[HEADER] = np.array(json.dumps(header))
    np.savez(file, allow_pickle=False, **arrays)


def _check_matches(network: Network, config: TrainConfig) -> None:
    architecture = (network.layer_sizes, network.activation, network.loss)
    expected = (config.layer_sizes, config.activation, config.loss)
    if architecture != expected:
        raise CheckpointError(f"the network {architecture} does not match its config {expected}")


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (where the platform allows opening a directory)."""
    with contextlib.suppress(OSError):
        handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


# Loading


def load_checkpoint(source: str | os.PathLike[str] | bytes | IO[bytes]) -> Checkpoint:
    """Load a checkpoint from a path, bytes or a binary file object.

    Raises :class:`CheckpointError` for anything that is not a complete, consistent
    checkpoint of this format version.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    try:
        archive = np.load(source, allow_pickle=False)
    except FileNotFoundError:
        raise CheckpointError(f"{source}: no such file") from None
    except (OSError, ValueError, EOFError, NotImplementedError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"not a checkpoint (.npz) file: {error}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise CheckpointError("not a checkpoint: a single .npy array, expected an .npz archive")
    with archive:
        try:
            return _read_archive(archive)
        except CheckpointError:
            raise
        except (
            NotImplementedError,
            TypeError,
            ValueError,
            KeyError,
            OSError,
            EOFError,
            zipfile.BadZipFile,
            zlib.error,
        ) as error:
            # A damaged archive fails in many places inside zipfile and NumPy; every one of
            # them means the same to the caller: this is not a usable checkpoint.
            raise CheckpointError(f"damaged checkpoint: {type(error).__name__}: {error}") from None


def _read_archive(archive: np.lib.npyio.NpzFile) -> Checkpoint:
    assert archive.zip is not None  # open: NumPy closes it only on close()
    _check_sizes(archive.zip)
    header = _read_header(archive)
    config = _read_config(header)
    network = _read_network(archive, header, config)
    return Checkpoint(
        network=network,
        config=config,
        progress=_read_progress(header, config),
        metadata=header["metadata"],
        optimizer=_read_optimizer(archive, header, network),
    )


def _check_sizes(container: zipfile.ZipFile) -> None:
    """Refuse oversized members before reading them (a zip can declare gigabytes)."""
    members = container.infolist()
    if len(members) > MAX_MEMBERS:
        raise CheckpointError(f"expected at most {MAX_MEMBERS} arrays, found {len(members)}")
    for member in members:
        if member.file_size > MAX_MEMBER_BYTES:
            raise CheckpointError(
                f"{member.filename}: {member.file_size:,} bytes, more than any network "
                f"this program builds ({MAX_MEMBER_BYTES:,})"
            )


def _read_array(archive: np.lib.npyio.NpzFile, name: str) -> np.ndarray:
    if name not in archive.files:
        raise CheckpointError(f"missing array {name!r} (is the file truncated or not ours?)")
    try:
        return archive[name]
    # A damaged member can fail in many ways (CRC, zlib, npy header, object dtype); each
    # of them means the same thing to the caller.
    except Exception as error:
        raise CheckpointError(f"array {name!r} is damaged: {error}") from None


def _read_header(archive: np.lib.npyio.NpzFile) -> dict[str, Any]:
    raw = _read_array(archive, HEADER)
    if raw.dtype.kind != "U" or raw.shape != ():
        raise CheckpointError(f"{HEADER!r}: expected a JSON string, found {raw.dtype} {raw.shape}")
    try:
        header = json.loads(str(raw[()]))
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{HEADER!r}: not valid JSON ({error})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"not a {FORMAT} (its header has no format {FORMAT!r})")
    metadata = header.get("metadata")
    if not isinstance(metadata, dict):
        raise CheckpointError("header: 'metadata' is missing")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"format version {version!r} is not supported; this program reads {FORMAT_VERSION}"
        )
    for key in ("config", "network", "progress"):
        if not isinstance(header.get(key), dict):
            raise CheckpointError(f"header: {key!r} is missing or not an object")
    return header


def _read_config(header: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.from_dict(header["config"])
    except ConfigError as error:
        raise CheckpointError(f"config: {error}") from None
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"config: invalid values ({error})") from None


def _read_network(
    archive: np.lib.npyio.NpzFile, header: dict[str, Any], config: TrainConfig
) -> Network:
    described = header["network"]
    expected = {
        "layer_sizes": list(config.layer_sizes),
        "activation": config.activation,
        "loss": config.loss,
    }
    for key, value in expected.items():
        if described.get(key) != value:
            raise CheckpointError(
                f"network {key} {described.get(key)!r} does not match the config's {value!r}"
            )
    sizes = config.layer_sizes
    weights = [
        _read_parameter(archive, f"weight_{layer}", (n_out, n_in))
        for layer, (n_in, n_out) in enumerate(itertools.pairwise(sizes))
    ]
    biases = [_read_parameter(archive, f"bias_{layer}", (n,)) for layer, n in enumerate(sizes[1:])]
    known = {f"{kind}_{layer}" for kind in ("weight", "bias") for layer in range(len(weights))}
    extra = sorted(
        name
        for name in archive.files
        if name.startswith(("weight_", "bias_")) and name not in known
    )
    if extra:
        raise CheckpointError(
            f"unexpected arrays {extra}: the config describes {len(weights)} layers"
        )
    dtypes = {array.dtype for array in (*weights, *biases)}
    if len(dtypes) != 1:
        raise CheckpointError(f"the parameters mix dtypes {sorted(map(str, dtypes))}")
    network = Network(sizes, config.activation, config.loss, seed=config.seed, dtype=dtypes.pop())
    network.weights, network.biases = weights, biases
    return network


def _read_parameter(archive: np.lib.npyio.NpzFile, name: str, shape: tuple[int, ...]) -> np.ndarray:
    array = _read_array(archive, name)
    if array.shape != shape:
        raise CheckpointError(
            f"{name}: expected shape {shape} from the config, found {array.shape}"
        )
    if array.dtype not in (np.float32, np.float64):
        raise CheckpointError(f"{name}: expected float32 or float64, found {array.dtype}")
    if not np.isfinite(array).all():
        raise CheckpointError(f"{name}: contains NaN or infinite values")
    return np.ascontiguousarray(array)


def _read_progress(header: dict[str, Any], config: TrainConfig) -> Progress:
    saved = header["progress"]
    counters = ("epoch", "batch_in_epoch", "batch_index", "examples_seen")
    for name in counters:
        value = saved.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CheckpointError(f"progress {name}: expected a whole number >= 0, found {value!r}")
    if saved["epoch"] > config.epochs:
        raise CheckpointError(
            f"progress epoch {saved['epoch']} is beyond the config's {config.epochs} epochs"
        )
    evaluations = saved.get("evaluations", [])
    try:
        restored = [Evaluation(**evaluation) for evaluation in evaluations]
    except TypeError as error:
        raise CheckpointError(f"progress evaluations: {error}") from None
    return Progress(**{name: saved[name] for name in counters}, evaluations=restored)


def _read_optimizer(
    archive: np.lib.npyio.NpzFile, header: dict[str, Any], network: Network
) -> OptimizerState | None:
    saved = header.get("optimizer")
    if saved is None:
        return None
    try:
        name, lr, steps = saved["name"], float(saved["lr"]), saved["steps"]
        counts = {str(key): int(count) for key, count in saved["arrays"].items()}
    except (TypeError, KeyError, ValueError, AttributeError) as error:
        raise CheckpointError(f"optimizer: malformed header ({error!r})") from None
    if name != header["config"].get("optimizer"):
        raise CheckpointError(f"optimizer {name!r} does not match the config's optimizer")
    if not (math.isfinite(lr) and lr > 0):
        raise CheckpointError(f"optimizer lr: expected a positive number, found {lr!r}")
    if not isinstance(steps, int) or steps < 0:
        raise CheckpointError(f"optimizer steps: expected a whole number >= 0, found {steps!r}")
    remembered = set(make_optimizer(name, lr).memory) if steps else set()
    if set(counts) != remembered:
        raise CheckpointError(
            f"optimizer: expected the arrays {sorted(remembered)} for {name} after "
            f"{steps} steps, found {sorted(counts)}"
        )
    shapes = [param.shape for param in parameters(network)]
    arrays: dict[str, list[np.ndarray]] = {}
    for key, count in counts.items():
        if count != len(shapes):
            raise CheckpointError(
                f"optimizer {key}: expected {len(shapes)} arrays (one per parameter), found {count}"
            )
        arrays[key] = [
            _read_parameter(archive, f"optimizer_{key}_{index}", shape)
            for index, shape in enumerate(shapes)
        ]
    return OptimizerState(name=name, lr=lr, steps=steps, arrays=arrays)
