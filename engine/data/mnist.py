"""MNIST for the network: where it is, checking it is the real thing, loading it.

The full set is looked for in a fixed order, so a run is always reproducible from its
command line: the `data_dir` argument (`--data-dir`), then the `BACKPROP_LIVE_DATA`
environment variable, then the user cache directory (where `backprop-live data
--download` puts it), and last the built-in sample of 10,000 digits that ships with
the package. An explicit choice that turns out to be wrong is an error, never a silent
fall back to something else.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import platformdirs

from engine.data.idx import DataError, gunzip, parse_idx

__all__ = [
    "CLASSES",
    "DATA_ENV",
    "IMAGE_SIDE",
    "MNIST_FILES",
    "PIXELS",
    "SAMPLE_NOTE",
    "DataError",
    "DataLocation",
    "Dataset",
    "MnistFile",
    "load_dataset",
    "load_location",
    "load_mnist_files",
    "load_sample",
    "locate_data",
    "user_cache_dir",
]

DATA_ENV = "BACKPROP_LIVE_DATA"
IMAGE_SIDE = 28  # every MNIST digit is a square of 28 x 28 pixels
PIXELS = IMAGE_SIDE * IMAGE_SIDE  # one digit as a row of values: the network's input size
CLASSES = 10  # the digits 0-9: the network's output size

SAMPLE_PATH = Path(__file__).resolve().parent / "sample" / "mnist-sample-10k.npz"
SAMPLE_TRAIN = 8_000
SAMPLE_TEST = 2_000
SAMPLE_SOURCE = f"built-in sample ({SAMPLE_TRAIN:,} train / {SAMPLE_TEST:,} test)"
# SHA-256 of images.tobytes() + labels.tobytes() of the shipped sample: pins the data
# itself, not the zip container around it (see scripts/build_sample.py).
SAMPLE_SHA256 = "2e49afdffc567fd5f9f306a04e2bafced2432146ae04f4b9a58b25505ba05b2e"
SAMPLE_NOTE = (
    f"Using the {SAMPLE_SOURCE} of MNIST; the full set (60,000 / 10,000) is one command "
    "away: `backprop-live data --download`"
)


@dataclass(frozen=True)
class MnistFile:
    """One of the four official MNIST files, with the checksums it is held to."""

    stem: str  # the uncompressed file name
    gz_size: int
    gz_md5: str
    raw_size: int
    raw_md5: str
    count: int

    @property
    def gz_name(self) -> str:
        return self.stem + ".gz"

    def expected(self, path: Path) -> tuple[int, str]:
        """Size and MD5 for `path`: the gzip file's own, or the IDX payload's when raw."""
        if path.suffix == ".gz":
            return self.gz_size, self.gz_md5
        return self.raw_size, self.raw_md5


MNIST_TRAIN_SIZE = 60_000  # digits in the official training set

# Official sizes and MD5s (the ones torchvision checks), in the order
# train images, train labels, test images, test labels.
MNIST_FILES: tuple[MnistFile, ...] = (
    MnistFile(
        "train-images-idx3-ubyte",
        9_912_422,
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        47_040_016,
        "6bbc9ace898e44ae57da46a324031adb",
        MNIST_TRAIN_SIZE,
    ),
    MnistFile(
        "train-labels-idx1-ubyte",
        28_881,
        "d53e105ee54ea40749a09fcbcd1e9432",
        60_008,
        "a25bea736e30d166cdddb491f175f624",
        MNIST_TRAIN_SIZE,
    ),
    MnistFile(
        "t10k-images-idx3-ubyte",
        1_648_877,
        "9fb629c4189551a2d022fa330f9573f3",
        7_840_016,
        "2646ac647ad5339dbf082846283269ea",
        10_000,
    ),
    MnistFile(
        "t10k-labels-idx1-ubyte",
        4_542,
        "ec29112dd5afa0611ce80d1b7f02629c",
        10_008,
        "27ae3e4e09519cfbb04c329615203637",
        10_000,
    ),
)


@dataclass(frozen=True)
class Dataset:
    """Train and test digits, ready for the network: one row of 784 pixels per digit.

    Images are float32 in [0, 1] (byte / 255) and C-contiguous so a mini-batch is a
    cheap row slice; labels are the digits 0-9 as uint8. ``train_bytes``, when the images came
    from bytes, holds those bytes (``train_images == train_bytes / 255`` exactly): gathering a
    shuffled mini-batch from them reads a quarter of the memory (see ``Trainer``).
    """

    name: str  # "mnist" or "sample"
    source: str  # where it came from, for people: a path or the sample's description
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    train_bytes: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_split("train", self.train_images, self.train_labels)
        _check_split("test", self.test_images, self.test_labels)
        pixels = self.train_bytes
        if pixels is not None and (
            pixels.dtype != np.uint8
            or pixels.shape != self.train_images.shape
            or not pixels.flags.c_contiguous
        ):
            raise ValueError(
                f"train_bytes: expected C-contiguous uint8 of shape {self.train_images.shape}, "
                f"found {pixels.dtype} of shape {pixels.shape}"
            )

    @property
    def train_size(self) -> int:
        return len(self.train_labels)

    @property
    def test_size(self) -> int:
        return len(self.test_labels)


def _check_split(split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Refuse arrays that break the contract, at construction rather than mid-training."""
    if images.dtype != np.float32 or images.ndim != 2 or images.shape[1] != PIXELS:
        raise ValueError(
            f"{split}_images: expected float32 of shape (n, {PIXELS}), "
            f"found {images.dtype} of shape {images.shape}"
        )
    if not images.flags.c_contiguous:
        raise ValueError(f"{split}_images: expected a C-contiguous array")
    if labels.dtype != np.uint8 or labels.shape != (len(images),):
        raise ValueError(
            f"{split}_labels: expected uint8 of shape ({len(images)},), "
            f"found {labels.dtype} of shape {labels.shape}"
        )


@dataclass(frozen=True)
class DataLocation:
    """Which data `load_dataset` would use, and which rule of the search order chose it."""

    name: str  # "mnist" or "sample"
    path: Path  # the MNIST directory, or the sample file
    reason: str  # e.g. "--data-dir", "user cache directory", why the sample
    files: tuple[Path, ...] = ()  # the four MNIST files, in MNIST_FILES order

    @property
    def is_sample(self) -> bool:
        return self.name == "sample"


def user_cache_dir() -> Path:
    """Where `backprop-live data --download` keeps MNIST (honours XDG_CACHE_HOME)."""
    return Path(platformdirs.user_cache_dir("backprop-live")) / "mnist"


def locate_data(data_dir: str | Path | None = None) -> DataLocation:
    """Decide which data would be loaded, without reading it.

    A directory that was asked for explicitly (argument or environment) must hold all
    four files, or this raises `DataError` naming the missing ones: falling back to the
    sample there would make someone believe they trained on the full set.
    """
    if data_dir is not None:
        return _explicit_location(Path(data_dir), "--data-dir")
    if os.environ.get(DATA_ENV):
        return _explicit_location(Path(os.environ[DATA_ENV]), f"{DATA_ENV} environment variable")
    cache = user_cache_dir()
    files, missing = find_mnist_files(cache)
    if not missing:
        return DataLocation("mnist", cache, "user cache directory", files)
    return DataLocation("sample", SAMPLE_PATH, _sample_reason(cache, missing))


def _explicit_location(directory: Path, origin: str) -> DataLocation:
    if not directory.is_dir():
        raise DataError(f"{directory} (from {origin}): expected a directory, found none")
    files, missing = find_mnist_files(directory)
    if missing:
        raise DataError(
            f"{directory} (from {origin}): expected the four MNIST files, missing "
            f"{', '.join(missing)} (the uncompressed names are accepted too); fetch them "
            f"with `backprop-live data --download --data-dir {directory}`"
        )
    return DataLocation("mnist", directory, origin, files)


def _sample_reason(cache: Path, missing: list[str]) -> str:
    found = len(MNIST_FILES) - len(missing)
    cache_state = f"only {found} of the 4 MNIST files in" if found else "no MNIST in"
    return f"no --data-dir, no {DATA_ENV}, {cache_state} the user cache {cache}"


def find_mnist_files(directory: Path) -> tuple[tuple[Path, ...], list[str]]:
    """The four MNIST files in `directory` (gzip name preferred), and the names missing."""
    found: list[Path] = []
    missing: list[str] = []
    for spec in MNIST_FILES:
        candidates = [directory / spec.gz_name, directory / spec.stem]
        present = [path for path in candidates if path.is_file()]
        if present:
            found.append(present[0])
        else:
            missing.append(spec.gz_name)
    return tuple(found), missing


def load_dataset(data_dir: str | Path | None = None) -> Dataset:
    """Load the data the search order picks (see the module docstring)."""
    return load_location(locate_data(data_dir))


def load_location(location: DataLocation) -> Dataset:
    """Load what `locate_data` found, checking every MNIST file against its MD5."""
    if location.is_sample:
        return load_sample()
    return load_mnist_files(location.path, location.files)


def load_mnist_files(directory: Path, files: tuple[Path, ...]) -> Dataset:
    """Load and verify the four MNIST files that `find_mnist_files` found in `directory`."""
    train_images, train_labels, test_images, test_labels = (
        read_mnist_file(path, spec) for path, spec in zip(files, MNIST_FILES, strict=True)
    )
    # Labels are read-only views of the file bytes; copies keep every array a plain one.
    return Dataset(
        name="mnist",
        source=str(directory),
        train_images=to_unit_floats(train_images),
        train_labels=train_labels.copy(),
        test_images=to_unit_floats(test_images),
        test_labels=test_labels.copy(),
        train_bytes=np.ascontiguousarray(train_images.reshape(len(train_images), PIXELS)),
    )


def read_mnist_file(path: Path, spec: MnistFile) -> np.ndarray:
    """One official MNIST file as uint8, refused unless size and MD5 match exactly."""
    data = path.read_bytes()
    check_bytes(path, data, *spec.expected(path))
    array = parse_idx(gunzip(data, path) if path.suffix == ".gz" else data, path)
    if len(array) != spec.count:
        raise DataError(f"{path}: expected {spec.count:,} items, found {len(array):,}")
    return array.reshape(spec.count, -1) if array.ndim == 3 else array


def check_bytes(path: Path, data: bytes, size: int, md5: str) -> None:
    """Refuse `data` unless it has exactly the official size and MD5.

    Size first: a truncated download is then reported as such, which says more than
    two unrelated hex strings.
    """
    if len(data) != size:
        raise DataError(f"{path}: expected {size:,} bytes, found {len(data):,}")
    found = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if found != md5:
        raise DataError(f"{path}: expected md5 {md5}, found {found}")


def to_unit_floats(pixels: np.ndarray) -> np.ndarray:
    """Bytes 0..255 to float32 0..1, dividing in place to hold only one float copy."""
    images = pixels.reshape(len(pixels), PIXELS).astype(np.float32)
    images /= 255
    return images


def load_sample() -> Dataset:
    """The built-in sample: MNIST training digits 0-9,999, split 8,000 / 2,000 in order.

    Verified against SAMPLE_SHA256 so a damaged install says so instead of training on
    garbage.
    """
    images, labels = read_sample(SAMPLE_PATH)
    found = sample_sha256(images, labels)
    if found != SAMPLE_SHA256:
        raise DataError(f"{SAMPLE_PATH}: expected sha256 {SAMPLE_SHA256}, found {found}")
    return Dataset(
        name="sample",
        source=SAMPLE_SOURCE,
        train_images=to_unit_floats(images[:SAMPLE_TRAIN]),
        train_labels=labels[:SAMPLE_TRAIN].copy(),
        test_images=to_unit_floats(images[SAMPLE_TRAIN:]),
        test_labels=labels[SAMPLE_TRAIN:].copy(),
        train_bytes=np.ascontiguousarray(images[:SAMPLE_TRAIN].reshape(SAMPLE_TRAIN, PIXELS)),
    )


def read_sample(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The sample file's uint8 images (10000, 784) and labels (10000,)."""
    with np.load(path, allow_pickle=False) as archive:
        return archive["images"], archive["labels"]


def sample_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    """The checksum that pins the sample's pixels and labels, independent of the zip."""
    digest = hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    return digest.hexdigest()
