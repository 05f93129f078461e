"""Uploads for /api/classify: every format a browser or phone sends, and every bad body."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from engine.data.mnist import load_sample
from engine.data.preprocess import to_mnist
from server.config import MAX_BODY_BYTES
from server.images import (
    MAX_SIDE,
    WORKING_SIDE,
    BlankImage,
    ImageError,
    ImageTooLarge,
    InvalidPixels,
    UnreadableImage,
    UnsupportedImageType,
    decode_image,
    image_to_mnist,
    pixels_to_array,
)


@pytest.fixture(scope="module")
def ink() -> np.ndarray:
    """A real MNIST digit at 280x280: how much ink each pixel holds, 0..1."""
    digit = load_sample().test_images[0].reshape(28, 28)
    return np.kron(digit, np.ones((10, 10), np.float32))


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def grey_image(levels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(levels * 255).astype(np.uint8))


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` grey pixels (one row of data)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(bytes(width + 1)))
        + png_chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real 16x16 JPEG whose frame header is edited to claim ``width`` x ``height``."""
    body = bytearray(encode(Image.new("L", (16, 16), 255), "JPEG"))
    frame = body.index(b"\xff\xc0")  # SOF0: marker, length(2), precision(1), height, width
    body[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    return bytes(body)


def assert_same_digit(body: bytes, content_type: str, ink: np.ndarray, tolerance: float) -> None:
    """The upload gives what the ink itself gives: every pixel within ``tolerance``, and on
    average within a tenth of it (lossy formats blur a few edge pixels more than the rest)."""
    errors = np.abs(image_to_mnist(body, content_type) - to_mnist(ink))
    assert errors.max() < tolerance
    assert errors.mean() < tolerance / 10


# --- formats that must work ---------------------------------------------------------------


@pytest.mark.parametrize("image_format", ["PNG", "WEBP"])
def test_lossless_grey_light_on_dark_and_dark_on_light(ink, image_format):
    content_type = f"image/{image_format.lower()}"
    options = {"lossless": True} if image_format == "WEBP" else {}
    for levels in (ink, 1 - ink):
        body = encode(grey_image(levels), image_format, **options)
        assert np.abs(decode_image(body, content_type) - levels).max() <= 0.5 / 255 + 1e-6
        assert_same_digit(body, content_type, ink, 0.01)


@pytest.mark.parametrize(("image_format", "quality"), [("JPEG", 75), ("WEBP", 80)])
def test_lossy_photos_of_dark_ink_on_paper(ink, image_format, quality):
    paper = 0.9 - 0.75 * ink  # grey paper, dark grey ink: no pure black or white anywhere
    rgb = grey_image(paper).convert("RGB")
    body = encode(rgb, image_format, quality=quality)
    assert_same_digit(body, f"image/{image_format.lower()}", ink, 0.2)


def test_canvas_export_black_strokes_on_transparent(ink):
    """What canvas.toBlob() sends: black strokes whose alpha is the ink, on (0, 0, 0, 0)."""
    rgba = np.zeros((*ink.shape, 4), np.uint8)
    rgba[..., 3] = np.round(ink * 255)
    body = encode(Image.fromarray(rgba, "RGBA"), "PNG")
    assert decode_image(body, "image/png")[0, 0] == 1  # transparent became white paper
    assert_same_digit(body, "image/png", ink, 0.01)


def test_white_strokes_on_transparent_with_junk_colour_underneath(ink):
    rgba = np.random.default_rng(0).integers(0, 256, (*ink.shape, 4)).astype(np.uint8)
    rgba[..., :3] = np.where(ink[..., None] > 0, 255, rgba[..., :3])
    rgba[..., 3] = np.round(ink * 255)
    body = encode(Image.fromarray(rgba, "RGBA"), "PNG")
    assert decode_image(body, "image/png")[0, 0] == 0  # transparent became a black board
    assert_same_digit(body, "image/png", ink, 0.01)


def test_grey_with_alpha(ink):
    luminance_alpha = np.stack([np.zeros_like(ink), ink], axis=-1)
    image = Image.fromarray(np.round(luminance_alpha * 255).astype(np.uint8), "LA")
    assert_same_digit(encode(image, "PNG"), "image/png", ink, 0.01)


def test_palette_with_and_without_a_transparent_entry(ink):
    binary = (ink > 0.5).astype(np.float32)
    palette = grey_image(1 - binary).convert("RGB").quantize(colors=2)
    assert_same_digit(encode(palette, "PNG"), "image/png", binary, 0.01)
    transparent_index = palette.getpixel((0, 0))  # the paper's entry
    body = encode(palette, "PNG", transparency=transparent_index)
    assert Image.open(io.BytesIO(body)).info["transparency"] == transparent_index
    assert_same_digit(body, "image/png", binary, 0.01)


def test_one_bit_black_and_white(ink):
    binary = (ink > 0.5).astype(np.float32)
    assert_same_digit(encode(grey_image(binary).convert("1"), "PNG"), "image/png", binary, 0.01)


def test_sixteen_bit_grey(ink):
    image = Image.fromarray(np.round(ink * 65535).astype(np.uint16))
    body = encode(image, "PNG")
    assert Image.open(io.BytesIO(body)).mode.startswith("I")
    assert np.abs(decode_image(body, "image/png") - ink).max() < 1e-4
    assert_same_digit(body, "image/png", ink, 0.01)


def test_cmyk_jpeg(ink):
    body = encode(grey_image(1 - ink).convert("CMYK"), "JPEG", quality=95)
    assert_same_digit(body, "image/jpeg", ink, 0.1)


def test_phone_photo_is_turned_upright_by_its_exif_orientation(ink):
    upright = 1 - ink
    sideways = np.rot90(upright)  # how the sensor stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    body = encode(grey_image(sideways), "JPEG", quality=95, exif=exif.tobytes())
    decoded = decode_image(body, "image/jpeg")
    assert decoded.shape == upright.shape
    assert np.abs(decoded - upright).mean() < 0.02
    assert_same_digit(body, "image/jpeg", ink, 0.1)


def test_multi_picture_jpeg_from_a_phone_camera(ink):
    """Many phones save MPO: a JPEG with extra pictures appended. The first one is the photo."""
    photo = grey_image(1 - ink).convert("RGB")
    body = encode(photo, "MPO", save_all=True, append_images=[photo.rotate(90)], quality=95)
    assert Image.open(io.BytesIO(body)).format == "MPO"
    assert_same_digit(body, "image/jpeg", ink, 0.1)


@pytest.mark.parametrize(
    "content_type", ["image/png; charset=binary", "IMAGE/PNG", "image/jpeg", "image/jpg"]
)
def test_content_type_parameters_case_and_aliases(ink, content_type):
    """Any of the accepted types may carry any of the three formats: only the decoders differ."""
    body = encode(grey_image(ink), "PNG")
    assert_same_digit(body, content_type, ink, 0.01)


def test_big_pictures_are_shrunk_before_preprocessing():
    page = np.ones((MAX_SIDE, MAX_SIDE // 2), np.float32)
    page[1000:3000, 700:1100] = 0
    for image_format in ("PNG", "JPEG"):
        body = encode(grey_image(page), image_format)
        grey = decode_image(body, f"image/{image_format.lower()}")
        assert max(grey.shape) <= WORKING_SIDE
        assert grey.shape[0] == 2 * grey.shape[1]
        digit = to_mnist(grey).reshape(28, 28)
        assert np.flatnonzero(digit.max(axis=1) > 0.5).size == pytest.approx(20, abs=1)


# --- bodies that must be refused, with the right status ----------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["image/gif", "text/plain", "application/octet-stream", "", "image/svg+xml", "image"],
)
def test_unknown_types_are_415(ink, content_type):
    with pytest.raises(UnsupportedImageType, match="not supported") as caught:
        decode_image(encode(grey_image(ink), "PNG"), content_type)
    assert caught.value.status_code == 415


@pytest.mark.parametrize(
    ("width", "height"), [(MAX_SIDE + 1, 10), (10, MAX_SIDE + 1), (5000, 5000), (65535, 65535)]
)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_huge_dimensions_in_a_small_png_are_413(width, height):
    body = png_claiming(width, height)
    assert len(body) < 100_000
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(body, "image/png")
    assert caught.value.status_code == 413
    assert f"{MAX_SIDE}x{MAX_SIDE}" in caught.value.message


@pytest.mark.parametrize(("width", "height"), [(MAX_SIDE + 1, 16), (60000, 60000)])
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_huge_dimensions_in_a_small_jpeg_are_413(width, height):
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(jpeg_claiming(width, height), "image/jpeg")
    assert caught.value.status_code == 413


def test_the_largest_allowed_size_is_accepted():
    assert decode_image(png_claiming(MAX_SIDE, 1), "image/png").shape == (1, WORKING_SIDE)


def test_bodies_over_the_byte_limit_are_413():
    with pytest.raises(ImageTooLarge, match="bytes") as caught:
        decode_image(b"\x89PNG" + bytes(MAX_BODY_BYTES), "image/png")
    assert caught.value.status_code == 413


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"hello, I am not a picture", "not a PNG, JPEG or WebP"),
        (b'{"pixels": [0, 0, 0]}', "not a PNG, JPEG or WebP"),
        (bytes(range(256)) * 20, "not a PNG, JPEG or WebP"),
    ],
    ids=["empty", "text", "json", "noise"],
)
def test_non_images_with_an_image_type_are_422(body, message):
    with pytest.raises(UnreadableImage, match=message) as caught:
        decode_image(body, "image/png")
    assert caught.value.status_code == 422


def test_formats_other_than_png_jpeg_webp_are_not_decoded(ink):
    gif = encode(grey_image(ink), "GIF")
    with pytest.raises(UnreadableImage, match="not a PNG, JPEG or WebP"):
        decode_image(gif, "image/png")


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP"])
def test_truncated_files_are_422(ink, image_format):
    noisy = np.clip(ink + np.random.default_rng(0).uniform(0, 0.3, ink.shape), 0, 1)
    body = encode(grey_image(noisy), image_format)
    with pytest.raises(UnreadableImage) as caught:
        decode_image(body[: len(body) // 2], f"image/{image_format.lower()}")
    assert caught.value.status_code == 422


def test_corrupt_png_data_is_422(ink):
    body = bytearray(encode(grey_image(ink), "PNG"))
    data = body.index(b"IDAT") + 4
    body[data : data + 40] = bytes(40)  # zeroes in the compressed stream; the CRC no longer fits
    with pytest.raises(UnreadableImage, match="damaged or truncated"):
        decode_image(bytes(body), "image/png")


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (1, 1), 0),
        Image.new("L", (1, 1), 255),
        Image.new("RGB", (280, 280), (255, 255, 255)),
        Image.new("RGB", (280, 280), (30, 90, 200)),
        Image.new("RGBA", (280, 280), (0, 0, 0, 0)),
    ],
    ids=["1x1-black", "1x1-white", "white", "blue", "transparent-canvas"],
)
def test_blank_pictures_are_422_saying_so(image):
    with pytest.raises(BlankImage, match="blank") as caught:
        image_to_mnist(encode(image, "PNG"), "image/png")
    assert caught.value.status_code == 422


def test_errors_are_value_errors_with_status_and_message():
    for error_type, status in [
        (UnsupportedImageType, 415),
        (ImageTooLarge, 413),
        (UnreadableImage, 422),
        (BlankImage, 422),
        (InvalidPixels, 422),
    ]:
        assert issubclass(error_type, ImageError)
        assert issubclass(error_type, ValueError)
        error = error_type("something is wrong")
        assert (error.status_code, str(error)) == (status, error.message)


# --- the {"pixels": [...]} form -----------------------------------------------------------


def test_pixels_are_used_as_given():
    values = [float(v) for v in np.linspace(0, 1, 784)]
    values[0], values[-1] = 0, 1  # ints are numbers too
    array = pixels_to_array(values)
    assert array.dtype == np.float32 and array.shape == (784,)
    assert np.allclose(array, np.linspace(0, 1, 784))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], "expected 784 numbers"),
        ([0.5] * 783, "got 783"),
        ([0.5] * 785, "got 785"),
        ([0.5] * 28, "expected 784"),
        ([float("nan")] + [0.0] * 783, "NaN"),
        ([0.0] * 783 + [float("inf")], "infinite"),
        ([-0.01] + [0.0] * 783, "between 0 and 1"),
        ([1.01] + [0.0] * 783, "between 0 and 1"),
        ([10**400] + [0.0] * 783, "between 0 and 1"),
        ([True] + [0.0] * 783, "number"),
        (["0.5"] + [0.0] * 783, "number"),
        ([None] + [0.0] * 783, "number"),
        ([[0.0] * 28] * 28, "784"),
        ([[0.0]] * 784, "number"),
        ("0" * 784, "list"),
        ({"0": 0.0}, "list"),
        (None, "list"),
    ],
)
def test_bad_pixels_are_422_naming_the_field(values, message):
    with pytest.raises(InvalidPixels, match=message) as caught:
        pixels_to_array(values)
    error = caught.value
    assert error.status_code == 422
    assert error.message.startswith("pixels: ")


# --- through a real server that keeps training ---------------------------------------------


def test_bad_uploads_get_their_status_while_the_run_keeps_training(server, ink):
    """Every image in issue 3's bad-input list, against `backprop-live serve` mid-training."""
    canvas = np.zeros((*ink.shape, 4), np.uint8)
    canvas[..., 3] = np.round(ink * 255)
    drawing = encode(Image.fromarray(canvas, "RGBA"), "PNG")
    uploads = [
        (png_claiming(60000, 60000), "image/png", 413, "4096x4096"),
        (png_claiming(MAX_SIDE + 1, 1), "image/png", 413, "4096x4096"),
        (jpeg_claiming(MAX_SIDE + 1, 16), "image/jpeg", 413, "4096x4096"),
        (b"GIF89a, or is it?", "image/webp", 422, "not a PNG, JPEG or WebP"),
        (drawing[: len(drawing) // 2], "image/png", 422, "truncated"),
        (encode(Image.new("L", (1, 1)), "PNG"), "image/png", 422, "blank"),
        (encode(Image.new("RGBA", (280, 280)), "PNG"), "image/png", 422, "blank"),
        (drawing, "image/gif", 415, "not supported"),
    ]
    server.fresh_run(epochs=100)
    server.ok("PATCH", "/api/run", json={"speed": None})
    server.ok("POST", "/api/run/start")
    try:
        first_batch = server.http.get("/api/run").json()["batch"]
        for body, content_type, status, message in uploads:
            answer = server.http.post(
                "/api/classify", content=body, headers={"content-type": content_type}
            )
            assert answer.status_code == status, answer.text
            assert message in answer.json()["detail"]
        answer = server.http.post(
            "/api/classify", content=drawing, headers={"content-type": "image/png"}
        )
        assert answer.status_code == 200, answer.text
        assert np.allclose(answer.json()["input"], image_to_mnist(drawing, "image/png"), atol=1e-3)
        run = server.http.get("/api/run").json()
        assert run["status"] == "running"
        assert run["batch"] > first_batch
    finally:
        server.ok("POST", "/api/run/pause")
