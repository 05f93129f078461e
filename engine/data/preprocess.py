"""MNIST's own preprocessing, applied to any picture of a digit.

The network only knows digits prepared the way LeCun, Cortes and Burges prepared MNIST: "the
original black and white (bilevel) images from NIST were size normalized to fit in a 20x20 pixel
box while preserving their aspect ratio. The resulting images contain grey levels as a result of
the anti-aliasing technique used by the normalization algorithm. The images were centered in a
28x28 image by computing the center of mass of the pixels, and translating the image so as to
position this point at the center of the 28x28 field." A drawing that skips a step (a digit too
small, off centre, black on white) looks like nothing the network has seen, so :func:`to_mnist`
repeats every step:

1. **ink**: the background is the median of the border pixels; ink is whatever differs from it,
   light on dark or dark on light, rescaled so that a full stroke is 1 and faint noise (JPEG
   ringing, paper texture) is 0;
2. **crop** to the bounding box of the ink;
3. **scale** the longer side to 20 pixels, keeping the aspect ratio, by area averaging (each
   output pixel is the mean of the picture under it, which is the anti-aliasing MNIST has);
4. **centre**: shift the 20-pixel digit into the 28x28 frame so that its centre of mass lands on
   :data:`CENTRE`, by a fractional amount (bilinear interpolation), not a rounded one.

Where is "the centre"? With pixel centres at integer coordinates counting from 0, the mean centre
of mass of MNIST's 60,000 training digits is row 13.996, column 14.007 (spread 0.29 px, because
MNIST shifted by whole pixels), so :data:`CENTRE` is (14, 14): half a pixel below and right of the
frame's middle (13.5, 13.5). ``tests/engine/test_preprocess.py`` measures it again.

Everything is a few small matrix products, so a 280x280 drawing takes well under a millisecond.
"""

from __future__ import annotations

import numpy as np

from engine.data.mnist import IMAGE_SIDE, PIXELS

BOX = 20  # the side of the box MNIST's digits are scaled to fit
CENTRE = (14.0, 14.0)  # (row, column) of MNIST's mean centre of mass
MIN_CONTRAST = 0.1  # ink must differ from the background by this much (grey levels 0..1)
NOISE_FLOOR = 0.1  # differences below this fraction of a full stroke count as background
FULL_INK_PERCENTILE = 90  # see full_ink


class BlankImageError(ValueError):
    """The picture has no ink: it is uniform, or nothing in it stands out from the background."""


def to_mnist(grey: np.ndarray) -> np.ndarray:
    """The 784 float32 values in [0, 1] that MNIST would have made of the picture ``grey``.

    ``grey`` is a 2-D array of grey levels in [0, 1] (0 black, 1 white) of any size, with the
    digit drawn light on dark or dark on light. The result is white ink on black, like MNIST.
    Raises :class:`BlankImageError` when there is no ink, ``ValueError`` for other bad arrays.
    """
    ink = ink_map(checked_grey(grey))
    rows, columns = ink_extent(ink)
    digit = fit_box(ink[rows, columns])
    return centre(digit).reshape(PIXELS)


def checked_grey(grey: np.ndarray) -> np.ndarray:
    """``grey`` as float32, after checking it is a 2-D array of finite values in [0, 1]."""
    grey = np.asarray(grey, dtype=np.float32)
    if grey.ndim != 2 or grey.size == 0:
        raise ValueError(f"expected a non-empty 2-D array of grey levels, got shape {grey.shape}")
    if not np.isfinite(grey).all() or grey.min() < 0 or grey.max() > 1:
        raise ValueError("grey levels must be finite numbers between 0 and 1")
    return grey


def border(grey: np.ndarray) -> np.ndarray:
    """The pixels along the four edges: where a digit drawn inside the frame leaves background."""
    return np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])


def ink_map(grey: np.ndarray) -> np.ndarray:
    """How much ink each pixel holds, from 0 (background) to 1 (a full stroke).

    The polarity is whichever side of the background the picture reaches further: a dark stroke
    on white paper reaches far below the paper's grey, a chalk line on a blackboard far above.
    """
    background = float(np.median(border(grey)))
    darker, lighter = background - float(grey.min()), float(grey.max()) - background
    contrast = max(darker, lighter)
    if contrast < MIN_CONTRAST:
        raise BlankImageError(
            "the image is blank: nothing in it differs from the background enough to be a digit"
        )
    ink = grey - background if lighter >= darker else background - grey
    full = full_ink(ink, contrast)
    floor = NOISE_FLOOR * full
    ink -= floor
    ink *= 1 / (full - floor)
    return np.clip(ink, 0, 1, out=ink)


def full_ink(ink: np.ndarray, strongest: float) -> float:
    """The level that counts as a full stroke: the 90th percentile of the strokes' cores.

    Not the maximum, which JPEG ringing or a speck of dust overshoots; on MNIST's own digits this
    level is at least 0.98 of the maximum for 99.5% of them. The percentile is np.percentile's
    (linear interpolation between the two nearest values), read from a partial sort: on the ten
    thousand values of a drawing, np.percentile itself takes three times as long.
    """
    core = ink[ink > strongest / 2]
    position = FULL_INK_PERCENTILE / 100 * (len(core) - 1)
    below = int(position)
    above = min(below + 1, len(core) - 1)
    ordered = np.partition(core, (below, above))
    low, high = float(ordered[below]), float(ordered[above])
    return low + (high - low) * (position - below)


def ink_extent(ink: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns of the ink's bounding box (every pixel above the noise floor)."""
    inked = ink > 0
    rows = np.flatnonzero(inked.any(axis=1))
    columns = np.flatnonzero(inked.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1)


def fit_box(digit: np.ndarray) -> np.ndarray:
    """``digit`` scaled so its longer side is :data:`BOX` pixels, keeping the aspect ratio.

    The scale is exact, so the shorter side may end in a partly covered pixel.
    """
    scale = BOX / max(digit.shape)
    if scale <= 1:
        return shrink(shrink(digit, scale, axis=0), scale, axis=1)
    rows, columns = (enlarging_matrix(length, scale) for length in digit.shape)
    return rows @ digit @ columns.T


def shrink(image: np.ndarray, scale: float, axis: int) -> np.ndarray:
    """``image`` shrunk by ``scale`` (at most 1) along ``axis``, averaging the area under each
    output pixel: the anti-aliasing MNIST's digits have.

    Output pixel ``i`` covers the source interval [i/scale, (i+1)/scale), and its value is the
    source's integral over that interval, times ``scale``. Integrals come from the running sum
    of the source, which is linear inside each pixel because a pixel is constant. (A matrix
    product would say the same, but a big one runs on every BLAS thread, and those threads
    stall when the machine is busy training: it made the 99th percentile a hundred times
    slower.)
    """
    image = np.moveaxis(image, axis, 0)
    length = image.shape[0]
    size = int(np.ceil(length * scale - 1e-9))
    edges = np.minimum(np.arange(size + 1) / scale, length)  # output pixel edges, in source pixels
    pixel = np.minimum(edges.astype(np.intp), length - 1)  # the source pixel each edge falls in
    before = np.cumsum(image, axis=0)[pixel] - image[pixel]  # everything before that pixel
    at_edges = before + (edges - pixel).astype(np.float32)[:, None] * image[pixel]
    shrunk = np.diff(at_edges, axis=0)
    shrunk *= scale
    return np.moveaxis(shrunk, 0, axis)


def enlarging_matrix(length: int, scale: float) -> np.ndarray:
    """The matrix that enlarges a line of ``length`` pixels by ``scale`` (more than 1).

    It interpolates linearly between source pixel centres: averaging the area under each output
    pixel, as :func:`shrink` does, would turn a few big pixels into blocks.
    """
    size = int(np.ceil(length * scale - 1e-9))
    outputs = np.arange(size, dtype=np.float64)[:, None]
    position = (outputs + 0.5) / scale - 0.5  # output pixel centres, in source coordinates
    return np.maximum(1 - np.abs(position - np.arange(length)), 0).astype(np.float32)


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """The (row, column) of the ink's centre of mass, pixel centres at integer coordinates."""
    mass = float(image.sum())
    row = float(np.arange(image.shape[0]) @ image.sum(axis=1)) / mass
    column = float(np.arange(image.shape[1]) @ image.sum(axis=0)) / mass
    return row, column


def centre(digit: np.ndarray) -> np.ndarray:
    """``digit`` placed in a 28x28 frame with its centre of mass exactly on :data:`CENTRE`."""
    row, column = centre_of_mass(digit)
    row_shift = shift_matrix(digit.shape[0], CENTRE[0] - row)
    column_shift = shift_matrix(digit.shape[1], CENTRE[1] - column)
    framed = row_shift @ digit @ column_shift.T
    return np.clip(framed, 0, 1, out=framed)


def shift_matrix(length: int, shift: float) -> np.ndarray:
    """The matrix that moves a line of ``length`` pixels by ``shift`` into a line of 28.

    A fractional shift splits each pixel between its two nearest destinations in proportion
    (bilinear interpolation), which moves the centre of mass by exactly ``shift``.
    """
    whole = int(np.floor(shift))
    fraction = shift - whole
    matrix = np.zeros((IMAGE_SIDE, length), dtype=np.float32)
    for destination, weight in ((whole, 1 - fraction), (whole + 1, fraction)):
        sources = np.arange(length)
        targets = sources + destination
        inside = (targets >= 0) & (targets < IMAGE_SIDE)
        matrix[targets[inside], sources[inside]] += weight
    return matrix
