"""What ``POST /api/classify`` accepts: an uploaded picture or 784 pixel values, checked.

Uploads come from strangers' phones and browsers, so every limit is checked before the work it
protects: the declared type before Pillow sees the bytes, the width and height in the header
before a single pixel is decoded. Each refusal is an :class:`ImageError` that carries the HTTP
status it deserves, so the route only has to copy ``status_code`` and ``message`` into the
response.

Only the picture's format lives here; the maths that turns it into MNIST's 784 values is in
:mod:`engine.data.preprocess`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.data.mnist import IMAGE_SIDE, PIXELS
from engine.data.preprocess import BlankImageError, to_mnist
from server.config import MAX_BODY_BYTES

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
# Whatever the declared type, only these decoders may run on the bytes: Pillow would otherwise
# try every format it knows, including ones no browser sends.
FORMATS = ("PNG", "JPEG", "WEBP")
MAX_SIDE = 4096
# Larger pictures are shrunk to at most this many pixels a side (by an integer factor, averaging)
# before the preprocessing sees them: the digit ends up 20 pixels tall anyway, and a 4096x4096
# photo would otherwise cost the preprocessing a quarter of a second.
WORKING_SIDE = 1024

# Pillow warns about images above this many pixels while reading the header and refuses twice
# as many outright. Set to the largest image accepted here, it only fires on images refused
# anyway, and caps how big a header Pillow will even consider.
Image.MAX_IMAGE_PIXELS = MAX_SIDE * MAX_SIDE


class ImageError(ValueError):
    """A request body that cannot be classified; ``status_code`` is the HTTP answer."""

    status_code = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedImageType(ImageError):
    """The content type is not one of :data:`IMAGE_TYPES`."""

    status_code = 415


class ImageTooLarge(ImageError):
    """More than :data:`MAX_BODY_BYTES` bytes, or more than :data:`MAX_SIDE` pixels a side."""

    status_code = 413


class UnreadableImage(ImageError):
    """Bytes that claim to be an image but are not one, or are damaged or cut short."""


class BlankImage(ImageError):
    """A readable picture with no digit in it: uniform, or nothing stands out."""


class InvalidPixels(ImageError):
    """A ``pixels`` list that is not :data:`PIXELS` numbers in [0, 1]."""

    def __init__(self, message: str) -> None:
        super().__init__(f"pixels: {message}")


def image_to_mnist(body: bytes, content_type: str) -> np.ndarray:
    """The 784 values the network sees for an uploaded picture (see :func:`decode_image`)."""
    try:
        return to_mnist(decode_image(body, content_type))
    except BlankImageError as error:
        raise BlankImage(str(error)) from error


def media_type(content_type: str) -> str:
    """``"image/png"`` from ``"Image/PNG; charset=binary"``: the type without parameters."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return TYPE_ALIASES.get(kind, kind)


def decode_image(body: bytes, content_type: str) -> np.ndarray:
    """The picture in ``body`` as grey levels in [0, 1] (float32, rows x columns).

    Phone photos are turned upright by their EXIF orientation; transparent pixels become
    background (see :func:`composite`); palettes and 16-bit greys become plain grey levels.
    """
    kind = media_type(content_type)
    if kind not in IMAGE_TYPES:
        raise UnsupportedImageType(
            f"content type {kind or 'missing'!r} is not supported: send {', '.join(IMAGE_TYPES)} "
            f'or JSON {{"pixels": [{PIXELS} numbers]}}'
        )
    if len(body) > MAX_BODY_BYTES:
        raise ImageTooLarge(f"the image is {len(body):,} bytes; the limit is {MAX_BODY_BYTES:,}")
    if not body:
        raise UnreadableImage(f"the body is empty: expected an image ({kind})")
    try:
        with Image.open(io.BytesIO(body), formats=FORMATS) as image:
            check_size(*image.size)
            shrink_while_decoding(image)
            ImageOps.exif_transpose(image, in_place=True)  # upright, without a copy
            return grey_levels(image)
    except ImageError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(
            f"the image is larger than {MAX_SIDE}x{MAX_SIDE} pixels ({error})"
        ) from error
    except UnidentifiedImageError as error:
        message = f"the body is not a PNG, JPEG or WebP image (declared {kind})"
        raise UnreadableImage(message) from error
    except Exception as error:
        # Decoders fed hostile bytes raise a zoo of types (OSError, SyntaxError, struct.error,
        # ValueError, ...); all of them mean the same thing to the client.
        raise UnreadableImage(f"the image is damaged or truncated: {error}") from error


def check_size(width: int, height: int) -> None:
    """Refuse a picture by the size in its header, before anything is decoded."""
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ImageTooLarge(
            f"the image is {width}x{height} pixels; the limit is {MAX_SIDE}x{MAX_SIDE}"
        )
    if width < 1 or height < 1:
        raise UnreadableImage(f"the image is {width}x{height} pixels: it has no pixels")


def shrink_while_decoding(image: Image.Image) -> None:
    """Let a big JPEG decode at 1/2, 1/4 or 1/8 scale (its decoder can; others ignore this)."""
    factor = max(image.size) // WORKING_SIDE
    if factor > 1:
        image.draft(image.mode, (image.width // factor, image.height // factor))


def shrunk(image: Image.Image) -> Image.Image:
    """``image`` reduced by averaging blocks of pixels to at most :data:`WORKING_SIDE` a side."""
    factor = math.ceil(max(image.size) / WORKING_SIDE)
    return image.reduce(factor) if factor > 1 else image


def grey_levels(image: Image.Image) -> np.ndarray:
    """Grey levels in [0, 1] of any picture Pillow can open as PNG, JPEG or WebP."""
    if image.mode.startswith("I;16") or image.mode == "I":
        return unit_array(shrunk(image.convert("I")), 65535)  # 16-bit greys: 0..65535
    if image.has_transparency_data:
        if image.mode not in ("LA", "RGBA"):
            image = image.convert("RGBA")  # palettes and transparent colours become alpha
        # Luminance and alpha as two planes of their own: a drawing's "LA" conversion and its
        # interleaved floats took three times as long.
        luminance = unit_array(shrunk(image.convert("L")), 255)
        alpha = unit_array(shrunk(image.getchannel("A")), 255)
        return composite(luminance, alpha)
    return unit_array(shrunk(image.convert("L")), 255)


def unit_array(image: Image.Image, white: int) -> np.ndarray:
    """The pixels of ``image`` as float32, divided by the value of white."""
    values = np.asarray(image, dtype=np.float32)
    values *= 1 / white
    return values


def composite(luminance: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Flatten a transparent picture onto a background that its strokes stand out from.

    A browser canvas exports strokes on fully transparent pixels whose colour is arbitrary
    (usually black). Transparent means background, so it becomes white under dark strokes and
    black under light ones; flattening dark strokes onto black would erase the digit. The
    result is written over ``luminance``.
    """
    opacity = float(alpha.sum())
    if opacity == 0:
        return np.zeros_like(luminance)
    stroke_luminance = float(np.vdot(luminance, alpha)) / opacity
    background = 1.0 if stroke_luminance < 0.5 else 0.0
    grey = np.subtract(luminance, background, out=luminance)  # α·L + (1 − α)·background
    grey *= alpha
    grey += background
    return grey


def pixels_to_array(values: Sequence[float]) -> np.ndarray:
    """Check the JSON form ``{"pixels": [784 numbers in 0..1]}``: a 28x28 digit, row by row.

    The values are used as they are, without preprocessing: they are already what the network
    sees (a test digit, or a drawing the browser prepared). Raises :class:`InvalidPixels`.
    """
    if not isinstance(values, (list, tuple)):
        raise InvalidPixels(f"expected a list of {PIXELS} numbers, got {type(values).__name__}")
    if len(values) != PIXELS:
        raise InvalidPixels(
            f"expected {PIXELS} numbers ({IMAGE_SIDE}x{IMAGE_SIDE}, row by row), got {len(values)}"
        )
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise InvalidPixels("every value must be a number")
    if not all(isinstance(v, int) or math.isfinite(v) for v in values):
        raise InvalidPixels("NaN and infinite values are not allowed")
    if not all(0 <= v <= 1 for v in values):
        raise InvalidPixels("every value must be between 0 and 1")
    return np.array(values, dtype=np.float32)
