"""The room's drawings as files: one as a PNG, all of them as a Kaggle CSV or a NumPy archive.

The CSV is the format of Kaggle's "Digit Recognizer" (and of Chris Deotte's MNIST demo): a
header ``label,pixel0,...,pixel783``, then one row per drawing, the label and 784 integers
0-255, row by row, 0 = no ink. Kaggle's notebooks read it as they read their training file.
"""

from __future__ import annotations

import csv
import io

import numpy as np
from PIL import Image

from engine.data.mnist import IMAGE_SIDE, PIXELS
from server.gallery import AUTHOR_LENGTH, Drawing, pixel_rows

CSV_HEADER = ["label", *(f"pixel{i}" for i in range(PIXELS))]


def png(drawing: Drawing, scale: int = 1) -> bytes:
    """The drawing as the network sees it, white ink on black like MNIST, ``scale`` times
    28 pixels a side (each pixel a square block, not blurred)."""
    image = Image.frombytes("L", (IMAGE_SIDE, IMAGE_SIDE), drawing.pixels)
    if scale > 1:
        image = image.resize((IMAGE_SIDE * scale,) * 2, Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def kaggle_csv(drawings: tuple[Drawing, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for drawing, pixels in zip(drawings, pixel_rows(drawings)):
        writer.writerow([drawing.label, *pixels.tolist()])
    return buffer.getvalue()


def npz(drawings: tuple[Drawing, ...], held_out: np.ndarray) -> bytes:
    """``images`` uint8 [n, 28, 28], ``labels`` uint8, ``ids``, ``held_out`` (bool: in the
    held-out half), ``created_at`` (Unix seconds) and ``authors`` ("" for none); no pickles,
    so ``np.load`` opens it with its safe defaults."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        images=pixel_rows(drawings).reshape(-1, IMAGE_SIDE, IMAGE_SIDE),
        labels=np.array([d.label for d in drawings], np.uint8),
        ids=np.array([d.id for d in drawings], np.int64),
        held_out=np.asarray(held_out, bool),
        created_at=np.array([d.created_at for d in drawings], np.float64),
        authors=np.array([d.author or "" for d in drawings], f"<U{AUTHOR_LENGTH}"),
    )
    return buffer.getvalue()
