"""engine.data.idx and engine.data: parsing, checksums, the search order, the full MNIST."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.data.idx import encode_idx, gunzip, parse_idx, read_idx
from engine.data.mnist import (
    DATA_ENV,
    MNIST_FILES,
    SAMPLE_NOTE,
    DataError,
    Dataset,
    load_dataset,
    locate_data,
    read_mnist_file,
    user_cache_dir,
)
from server.cli.data import add_data_arguments, run_data

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = MNIST_FILES


def write_placeholders(directory: Path, names: list[str]) -> None:
    """Files that have the right names but not the right bytes: enough for locate_data."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_bytes(b"not mnist")


def all_gz_names() -> list[str]:
    return [spec.gz_name for spec in MNIST_FILES]


# --- IDX format ---------------------------------------------------------------------


def test_encode_writes_the_mnist_magic_numbers():
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    labels = np.zeros(2, dtype=np.uint8)
    assert encode_idx(images)[:16] == bytes.fromhex("00000803 00000002 0000001c 0000001c")
    assert encode_idx(labels)[:8] == bytes.fromhex("00000801 00000002")


def test_parse_reads_back_images_and_labels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    labels = np.array([7, 2, 1], dtype=np.uint8)
    np.testing.assert_array_equal(parse_idx(encode_idx(images), "x"), images)
    np.testing.assert_array_equal(parse_idx(encode_idx(labels), "y"), labels)


def test_parse_refuses_a_wrong_magic_number():
    payload = bytes.fromhex("00000d01 00000001") + b"\0\0\0\0"  # float32 type code
    with pytest.raises(DataError, match=r"some/file: expected .*2049.*2051.*found 3329"):
        parse_idx(payload, "some/file")


def test_parse_refuses_a_truncated_payload():
    payload = encode_idx(np.zeros((4, 28, 28), dtype=np.uint8))[:-10]
    with pytest.raises(DataError, match=r"f\.idx: expected 3,152 bytes .* found 3,142"):
        parse_idx(payload, "f.idx")


def test_parse_refuses_a_truncated_header():
    with pytest.raises(DataError, match="expected an IDX header of 16 bytes, found 10"):
        parse_idx(bytes.fromhex("00000803 00000001 0000"), "f")
    with pytest.raises(DataError, match="found only 2 bytes"):
        parse_idx(b"\0\0", "f")


def test_read_idx_accepts_gzip_and_raw_names(tmp_path: Path):
    labels = np.arange(10, dtype=np.uint8)
    (tmp_path / "labels").write_bytes(encode_idx(labels))
    (tmp_path / "labels.gz").write_bytes(gzip.compress(encode_idx(labels)))
    np.testing.assert_array_equal(read_idx(tmp_path / "labels"), labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "labels.gz"), labels)


def test_gunzip_refuses_a_damaged_stream():
    damaged = gzip.compress(b"x" * 1000)[:-12]
    with pytest.raises(DataError, match=r"where/it\.gz: expected a gzip file"):
        gunzip(damaged, "where/it.gz")


# --- checksums ------------------------------------------------------------------------


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


def test_wrong_gz_file_is_refused_by_md5(tmp_path: Path):
    path = tmp_path / TRAIN_LABELS.gz_name
    path.write_bytes(bytes(TRAIN_LABELS.gz_size))  # right size, wrong bytes
    found = hashlib.md5(path.read_bytes()).hexdigest()
    with pytest.raises(DataError) as caught:
        read_mnist_file(path, TRAIN_LABELS)
    assert str(caught.value) == f"{path}: expected md5 {TRAIN_LABELS.gz_md5}, found {found}"


def test_raw_file_is_held_to_the_payload_md5(tmp_path: Path):
    path = tmp_path / TEST_LABELS.stem
    path.write_bytes(encode_idx(np.zeros(10_000, dtype=np.uint8)))
    with pytest.raises(DataError, match=f"expected md5 {TEST_LABELS.raw_md5}, found "):
        read_mnist_file(path, TEST_LABELS)


def test_truncated_file_is_refused_by_size(tmp_path: Path):
    path = tmp_path / TEST_LABELS.gz_name
    path.write_bytes(b"\x1f\x8b" + bytes(98))
    with pytest.raises(DataError) as caught:
        read_mnist_file(path, TEST_LABELS)
    assert str(caught.value) == f"{path}: expected 4,542 bytes, found 100"


# --- search order -------------------------------------------------------------------


def test_nothing_found_means_the_sample(no_user_data: Path):
    location = locate_data()
    assert location.name == "sample"
    assert location.is_sample
    assert str(no_user_data) in location.reason
    assert "no MNIST in" in location.reason


def test_complete_cache_is_used(no_user_data: Path):
    write_placeholders(no_user_data, all_gz_names())
    location = locate_data()
    assert (location.name, location.path, location.reason) == (
        "mnist",
        no_user_data,
        "user cache directory",
    )
    assert location.files == tuple(no_user_data / name for name in all_gz_names())


def test_incomplete_cache_falls_back_to_the_sample(no_user_data: Path):
    write_placeholders(no_user_data, all_gz_names()[:2])
    location = locate_data()
    assert location.name == "sample"
    assert "only 2 of the 4 MNIST files" in location.reason


def test_environment_beats_cache(no_user_data: Path, tmp_path: Path, monkeypatch):
    write_placeholders(no_user_data, all_gz_names())
    write_placeholders(tmp_path / "env", all_gz_names())
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    location = locate_data()
    assert location.path == tmp_path / "env"
    assert DATA_ENV in location.reason


def test_environment_without_files_is_an_error(no_user_data: Path, tmp_path: Path, monkeypatch):
    write_placeholders(no_user_data, all_gz_names())
    write_placeholders(tmp_path / "env", all_gz_names()[:3])
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    with pytest.raises(DataError, match=rf"{DATA_ENV}.*missing t10k-labels-idx1-ubyte\.gz "):
        locate_data()


def test_argument_beats_environment(no_user_data: Path, tmp_path: Path, monkeypatch):
    write_placeholders(tmp_path / "env", all_gz_names())
    write_placeholders(tmp_path / "arg", all_gz_names())
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    assert locate_data(tmp_path / "arg").path == tmp_path / "arg"
    assert locate_data(str(tmp_path / "arg")).reason == "--data-dir"


def test_argument_without_files_is_an_error_not_a_fallback(no_user_data: Path, tmp_path: Path):
    write_placeholders(no_user_data, all_gz_names())
    write_placeholders(tmp_path / "arg", [TRAIN_IMAGES.gz_name, TEST_IMAGES.stem])
    with pytest.raises(DataError) as caught:
        locate_data(tmp_path / "arg")
    message = str(caught.value)
    assert str(tmp_path / "arg") in message
    assert "missing train-labels-idx1-ubyte.gz, t10k-labels-idx1-ubyte.gz" in message
    assert "backprop-live data --download" in message


def test_missing_directory_is_an_error(no_user_data: Path, tmp_path: Path):
    with pytest.raises(DataError, match=r"nowhere \(from --data-dir\): expected a directory"):
        locate_data(tmp_path / "nowhere")


def test_raw_names_are_found_and_gzip_is_preferred(tmp_path: Path):
    names = [spec.stem for spec in MNIST_FILES] + [TRAIN_IMAGES.gz_name]
    write_placeholders(tmp_path, names)
    files = locate_data(tmp_path).files
    assert [path.name for path in files] == [TRAIN_IMAGES.gz_name, *names[1:4]]


def test_a_damaged_cache_is_an_error_not_the_sample(no_user_data: Path):
    write_placeholders(no_user_data, all_gz_names())
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: expected 9,912,422 bytes"):
        load_dataset()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG is a Linux convention")
def test_user_cache_dir_honours_xdg(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert user_cache_dir() == tmp_path / "backprop-live" / "mnist"


# --- Dataset contract -------------------------------------------------------------------


def test_dataset_refuses_arrays_that_break_the_contract():
    images = np.zeros((2, 784), dtype=np.float32)
    labels = np.zeros(2, dtype=np.uint8)
    Dataset("mnist", "here", images, labels, images, labels)
    with pytest.raises(ValueError, match="train_images: expected float32"):
        Dataset("mnist", "here", images.astype(np.float64), labels, images, labels)
    with pytest.raises(ValueError, match="test_labels: expected uint8 of shape \\(2,\\)"):
        Dataset("mnist", "here", images, labels, images, labels[:1])
    with pytest.raises(ValueError, match="C-contiguous"):
        Dataset("mnist", "here", np.asfortranarray(images), labels, images, labels)


# --- the full MNIST -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist(mnist_dir: Path) -> Dataset:
    return load_dataset(mnist_dir)


def test_full_mnist_loads(mnist: Dataset, mnist_dir: Path):
    assert (mnist.name, mnist.source) == ("mnist", str(mnist_dir))
    assert (mnist.train_size, mnist.test_size) == (60_000, 10_000)
    assert mnist.train_images.shape == (60_000, 784)
    assert mnist.test_images.shape == (10_000, 784)
    for images in (mnist.train_images, mnist.test_images):
        assert images.dtype == np.float32
        assert images.flags.c_contiguous
        assert images.min() == 0.0
        assert images.max() == 1.0


def test_full_mnist_labels(mnist: Dataset):
    assert np.bincount(mnist.train_labels).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.test_labels).tolist() == TEST_COUNTS
    assert mnist.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_full_mnist_pixels_are_bytes_over_255(mnist: Dataset, mnist_dir: Path):
    raw = read_idx(mnist_dir / TEST_IMAGES.gz_name).reshape(10_000, 784)
    np.testing.assert_array_equal(mnist.test_images * np.float32(255), raw.astype(np.float32))
    assert mnist.test_images[0, 202] == np.float32(raw[0, 202]) / np.float32(255)


def test_raw_files_load_like_gzip_files(mnist: Dataset, mnist_dir: Path, tmp_path: Path):
    for spec in (TRAIN_IMAGES, TRAIN_LABELS):
        (tmp_path / spec.gz_name).symlink_to(mnist_dir / spec.gz_name)
    for spec in (TEST_IMAGES, TEST_LABELS):
        payload = gzip.decompress((mnist_dir / spec.gz_name).read_bytes())
        (tmp_path / spec.stem).write_bytes(payload)
    raw = load_dataset(tmp_path)
    np.testing.assert_array_equal(raw.test_images, mnist.test_images)
    np.testing.assert_array_equal(raw.test_labels, mnist.test_labels)


def test_truncated_real_file_is_refused(mnist_dir: Path, tmp_path: Path):
    for spec in MNIST_FILES:
        shutil.copyfile(mnist_dir / spec.gz_name, tmp_path / spec.gz_name)
    with open(tmp_path / TEST_LABELS.gz_name, "r+b") as file:
        file.truncate(4_000)
    with pytest.raises(DataError) as caught:
        load_dataset(tmp_path)
    path = tmp_path / TEST_LABELS.gz_name
    assert str(caught.value) == f"{path}: expected 4,542 bytes, found 4,000"


# --- `backprop-live data` -------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="backprop-live data")
    add_data_arguments(parser)
    return run_data(parser.parse_args(argv))


def test_cli_reports_the_sample_with_its_note(no_user_data: Path, capsys):
    assert run_cli() == 0
    out = capsys.readouterr().out
    assert out.startswith("dataset: sample\nsource:  built-in sample (8,000 train / 2,000 test)\n")
    assert "train:   8,000 digits\ntest:    2,000 digits\n" in out
    assert f"no MNIST in the user cache {no_user_data}" in out
    assert out.endswith(SAMPLE_NOTE + "\n")


def test_cli_reports_a_data_dir(mnist_dir: Path, capsys):
    assert run_cli("--data-dir", str(mnist_dir)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"dataset: mnist\nsource:  {mnist_dir}\nchosen:  --data-dir\n")
    assert "train:   60,000 digits\ntest:    10,000 digits\n" in out
    assert SAMPLE_NOTE not in out


def test_cli_data_error_exits_1_with_the_message(tmp_path: Path, capsys):
    assert run_cli("--data-dir", str(tmp_path)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"backprop-live data: error: {tmp_path} (from --data-dir): expected")


def test_cli_bad_arguments_are_argparse_errors():
    with pytest.raises(SystemExit) as caught:
        run_cli("--data-dir")
    assert caught.value.code == 2
