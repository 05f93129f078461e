"""The IDX file format that MNIST is published in.

An IDX file is a big-endian header followed by raw array bytes::

    magic  : 4 bytes = 0x00, 0x00, type code, number of dimensions
    sizes  : one uint32 per dimension
    payload: product(sizes) items of the type, row-major

MNIST uses only the unsigned-byte type (0x08), so the image files have magic
0x00000803 = 2051 (3 dimensions: count, rows, columns) and the label files
0x00000801 = 2049 (1 dimension: count). Nothing here knows which file is which;
`engine.data` checks that.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

UNSIGNED_BYTE = 0x08
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


class DataError(ValueError):
    """A data file or directory is missing, damaged or not the one expected.

    The message always names the path, what was expected and what was found, because
    the person reading it has to find and replace the file by hand.
    """


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file, gzipped when its name ends in `.gz`, without any checksum."""
    data = path.read_bytes()
    return parse_idx(gunzip(data, path) if path.suffix == ".gz" else data, path)


def gunzip(data: bytes, path: Path | str) -> bytes:
    """Decompress gzip bytes, turning a damaged stream into a `DataError` naming `path`."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(
            f"{path}: expected a gzip file, found one that fails to unpack ({error})"
        ) from error


def parse_idx(payload: bytes, path: Path | str) -> np.ndarray:
    """Decode an unsigned-byte IDX payload into a uint8 array of its declared shape.

    The array is a view of `payload` (no copy), so parsing 47 MB of images is instant.
    `path` is only used to make error messages point at the file.
    """
    shape = _idx_shape(payload, path)
    header = 4 + 4 * len(shape)
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(payload) != expected:
        raise DataError(
            f"{path}: expected {expected:,} bytes for an IDX array of shape {shape}, "
            f"found {len(payload):,} (truncated or padded file)"
        )
    return np.frombuffer(payload, dtype=np.uint8, offset=header).reshape(shape)


def _idx_shape(payload: bytes, path: Path | str) -> tuple[int, ...]:
    """Read the magic number and dimension sizes from the start of an IDX payload."""
    if len(payload) < 4:
        raise DataError(f"{path}: expected an IDX header, found only {len(payload)} bytes")
    zero, type_code, ndim = struct.unpack(">HBB", payload[:4])
    if zero != 0 or type_code != UNSIGNED_BYTE or ndim == 0:
        magic = int.from_bytes(payload[:4], "big")
        raise DataError(
            f"{path}: expected an unsigned-byte IDX magic number "
            f"({LABELS_MAGIC} for labels, {IMAGES_MAGIC} for images), found {magic}"
        )
    if len(payload) < 4 + 4 * ndim:
        raise DataError(
            f"{path}: expected an IDX header of {4 + 4 * ndim} bytes, found {len(payload)}"
        )
    return struct.unpack(f">{ndim}I", payload[4 : 4 + 4 * ndim])


def magic_number(array: np.ndarray) -> int:
    """The IDX magic number an unsigned-byte array of this rank carries."""
    return (UNSIGNED_BYTE << 8) | array.ndim


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array: the inverse of `parse_idx`, used by tests and tools."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(f">I{array.ndim}I", magic_number(array), *array.shape)
    return header + array.tobytes()
