"""Checkpoints: exact round trips, exact resumption, and refusal of anything damaged."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine.checkpoint import (
    CheckpointError,
    checkpoint_bytes,
    load_checkpoint,
    save_trainer,
)
from engine.data.mnist import Dataset
from engine.training import TrainConfig, Trainer


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """Small random digits: resumption is about bookkeeping, not about learning MNIST."""
    rng = np.random.default_rng(7)
    return Dataset(
        name="sample",
        source="random test digits",
        train_images=rng.random((450, 784), dtype=np.float32),
        train_labels=rng.integers(0, 10, 450).astype(np.uint8),
        test_images=rng.random((60, 784), dtype=np.float32),
        test_labels=rng.integers(0, 10, 60).astype(np.uint8),
    )


def small_config(**changes) -> TrainConfig:
    values = {"hidden": (12, 8), "batch_size": 40, "epochs": 4, "seed": 3, **changes}
    return TrainConfig(**values)


def trained(config: TrainConfig, dataset: Dataset, steps: int) -> Trainer:
    trainer = Trainer(config, dataset)
    for _ in range(steps):
        trainer.step()
    return trainer


def save(trainer: Trainer, path: Path) -> Path:
    return save_trainer(path, trainer)


def assert_same_parameters(left, right) -> None:
    for a, b in zip([*left.weights, *left.biases], [*right.weights, *right.biases], strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_round_trip_restores_everything(dataset, tmp_path):
    trainer = trained(small_config(activation="tanh", loss="cross-entropy"), dataset, 15)

    path = save(trainer, tmp_path / "run.npz")
    checkpoint = load_checkpoint(path)

    assert checkpoint.config == trainer.config
    assert checkpoint.network.layer_sizes == (784, 12, 8, 10)
    assert (checkpoint.network.activation, checkpoint.network.loss) == ("tanh", "cross-entropy")
    assert_same_parameters(checkpoint.network, trainer.network)
    assert checkpoint.progress == trainer.progress
    assert len(checkpoint.progress.evaluations) == 1  # 15 batches of 40 cross one epoch end
    assert checkpoint.metadata["dataset"] == "sample"
    assert checkpoint.metadata["format_version"] == 1
    assert checkpoint.metadata["created"].endswith("+00:00")
    probe = dataset.test_images[:5]
    np.testing.assert_array_equal(checkpoint.network.predict(probe), trainer.network.predict(probe))


def test_bytes_and_file_objects_load_like_paths(dataset, tmp_path):
    trainer = trained(small_config(), dataset, 3)
    data = checkpoint_bytes(trainer.network, trainer.config, trainer.progress)

    from_bytes = load_checkpoint(data)
    from_file = load_checkpoint(io.BytesIO(data))

    assert_same_parameters(from_bytes.network, trainer.network)
    assert_same_parameters(from_file.network, trainer.network)
    assert from_bytes.optimizer is None


@pytest.mark.parametrize(
    "changes",
    [
        {"optimizer": "sgd", "lr": 3.0},
        {"optimizer": "momentum", "lr": 0.5, "weight_decay": 1e-4, "lr_schedule": "cosine"},
        {"optimizer": "adam", "lr": 0.01, "augment_shift": 2},
    ],
)
def test_resuming_continues_exactly_as_if_never_stopped(dataset, tmp_path, changes):
    config = small_config(**changes)
    # 14 = one full epoch of 12 mini-batches (the last one partial) and 2 into the next;
    # 16 more cross the next epoch end, so the reshuffle must be reproduced too.
    straight = trained(config, dataset, 14 + 16)

    interrupted = trained(config, dataset, 14)
    path = save(interrupted, tmp_path / "half.npz")
    resumed = load_checkpoint(path).trainer(dataset)
    for _ in range(16):
        resumed.step()

    assert_same_parameters(resumed.network, straight.network)
    assert resumed.progress == straight.progress
    assert resumed.optimizer.steps == straight.optimizer.steps == 30


def test_resuming_keeps_a_changed_learning_rate(dataset, tmp_path):
    trainer = trained(small_config(), dataset, 2)
    trainer.lr = 0.25
    resumed = load_checkpoint(save(trainer, tmp_path / "lr.npz")).trainer(dataset)
    assert resumed.lr == 0.25


def test_resuming_on_a_smaller_dataset_mid_epoch_is_refused(dataset, tmp_path):
    trainer = trained(small_config(), dataset, 9)  # mini-batch 10 of 12 in the first epoch
    smaller = Dataset(
        "sample",
        "fewer digits",
        dataset.train_images[:200],
        dataset.train_labels[:200],
        dataset.test_images,
        dataset.test_labels,
    )
    checkpoint = load_checkpoint(save(trainer, tmp_path / "run.npz"))
    with pytest.raises(CheckpointError, match="only 5 mini-batches per epoch"):
        checkpoint.trainer(smaller)


def test_atomic_save_leaves_only_the_checkpoint(dataset, tmp_path):
    trainer = trained(small_config(), dataset, 1)
    save(trainer, tmp_path / "a.npz")
    save(trainer, tmp_path / "a.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


def test_interrupted_save_keeps_the_old_file(dataset, tmp_path, monkeypatch):
    path = save(trained(small_config(), dataset, 1), tmp_path / "run.npz")
    before = path.read_bytes()
    later = trained(small_config(), dataset, 5)

    def power_cut(*args):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError, match="simulated crash"):
        save(later, path)

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]
    assert load_checkpoint(path).progress.batch_index == 1


# Refusals


@pytest.fixture
def good_bytes(dataset) -> bytes:
    trainer = trained(small_config(optimizer="adam", lr=0.01), dataset, 2)
    return checkpoint_bytes(
        trainer.network, trainer.config, trainer.progress, optimizer=trainer.optimizer
    )


def rewritten(data: bytes, change) -> bytes:
    """The archive with its arrays passed through ``change(dict) -> dict``."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    buffer = io.BytesIO()
    np.savez(buffer, **change(arrays))
    return buffer.getvalue()


def with_header(data: bytes, edit) -> bytes:
    def change(arrays):
        header = json.loads(str(arrays["header"][()]))
        edit(header)
        arrays["header"] = np.array(json.dumps(header))
        return arrays

    return rewritten(data, change)


def refused(data: bytes, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(data)


def test_refuses_files_that_are_not_npz():
    refused(b"", "not a checkpoint")
    refused(b"hello, I am a text file\n" * 10, "not a checkpoint")
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    refused(buffer.getvalue(), "single .npy array")


def test_refuses_a_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "absent.npz")


def test_refuses_truncated_files(good_bytes):
    for length in (10, len(good_bytes) // 2, len(good_bytes) - 30):
        refused(good_bytes[:length], "not a checkpoint")


def test_refuses_flipped_bytes_inside_an_array(good_bytes):
    container = zipfile.ZipFile(io.BytesIO(good_bytes))
    member = container.getinfo("weight_0.npy")
    # Past the local file header and the .npy header: the weights themselves.
    offset = member.header_offset + 30 + len(member.filename) + 200
    damaged = bytearray(good_bytes)
    damaged[offset] ^= 0xFF
    refused(bytes(damaged), "weight_0.*damaged")


def test_refuses_pickled_arrays(good_bytes):
    def add_object(arrays):
        arrays["header"] = np.array([{"format": "backprop-live checkpoint"}], dtype=object)
        return arrays

    refused(rewritten(good_bytes, add_object), "header.*damaged.*pickle")


def test_refuses_missing_arrays(good_bytes):
    def drop(arrays):
        del arrays["bias_1"]
        return arrays

    refused(rewritten(good_bytes, drop), "missing array 'bias_1'")
    refused(rewritten(good_bytes, lambda a: {"weights": a["weight_0"]}), "missing array 'header'")


def test_refuses_shapes_that_do_not_match_the_config(good_bytes):
    def shrink(arrays):
        arrays["weight_1"] = arrays["weight_1"][:, :5]
        return arrays

    refused(rewritten(good_bytes, shrink), r"weight_1: expected shape \(8, 12\).*found \(8, 5\)")

    def widen_config(header):
        header["config"]["hidden"] = [12, 9]
        header["network"]["layer_sizes"] = [784, 12, 9, 10]

    refused(with_header(good_bytes, widen_config), r"weight_1: expected shape \(9, 12\)")


def test_refuses_inconsistent_or_invalid_headers(good_bytes):
    def newer(header):
        header["metadata"]["format_version"] = 2

    def other_loss(header):
        header["network"]["loss"] = "cross-entropy"

    def bad_config(header):
        header["config"]["batch_size"] = 0

    def bad_progress(header):
        header["progress"]["epoch"] = -1

    def other_format(header):
        header["format"] = "something else"

    refused(with_header(good_bytes, newer), "format version 2 is not supported")
    refused(with_header(good_bytes, other_loss), "network loss 'cross-entropy' does not match")
    refused(with_header(good_bytes, bad_config), "config: batch_size")
    refused(with_header(good_bytes, bad_progress), "progress epoch")
    refused(with_header(good_bytes, other_format), "not a backprop-live checkpoint")


def test_refuses_extra_layers_and_bad_values(good_bytes):
    def extra_layer(arrays):
        arrays["weight_3"] = np.zeros((10, 10), np.float32)
        return arrays

    def poisoned(arrays):
        arrays["bias_0"] = np.full_like(arrays["bias_0"], np.nan)
        return arrays

    def missing_moment(arrays):
        del arrays["optimizer_variances_2"]
        return arrays

    refused(rewritten(good_bytes, extra_layer), "unexpected arrays.*weight_3")
    refused(rewritten(good_bytes, poisoned), "bias_0: contains NaN")
    refused(rewritten(good_bytes, missing_moment), "missing array 'optimizer_variances_2'")


def test_refuses_oversized_members(good_bytes):
    def huge(arrays):
        arrays["padding"] = np.zeros(5 * 2**20)  # 40 MB of zeros compress to almost nothing
        return arrays

    with np.load(io.BytesIO(good_bytes), allow_pickle=False) as archive:
        arrays = huge({name: archive[name] for name in archive.files})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    assert len(buffer.getvalue()) < 2 * 2**20
    refused(buffer.getvalue(), "padding.npy: 41,943,168 bytes")


def test_refuses_an_unsupported_zip_version(good_bytes):
    # The central directory entry's "version needed to extract", set to one from the future.
    damaged = bytearray(good_bytes)
    entry = damaged.index(b"PK\x01\x02")
    damaged[entry + 6] = 0xFF
    refused(bytes(damaged), "damaged checkpoint|not a checkpoint")


def test_refuses_a_fractional_seed(good_bytes):
    refused(with_header(good_bytes, lambda header: header["config"].update(seed=1.5)), "seed")


@pytest.mark.parametrize(
    ("field", "value"),
    [("hidden", [16.5]), ("batch_size", 100.5), ("epochs", True), ("lr", "3"), ("loss", 1)],
)
def test_refuses_config_values_of_the_wrong_kind(good_bytes, field, value):
    refused(with_header(good_bytes, lambda header: header["config"].update({field: value})), field)
