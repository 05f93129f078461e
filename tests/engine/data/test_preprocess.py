"""MNIST-style preprocessing: checked against MNIST itself.

The oracle is MNIST: real digits are blown up, moved, inverted and JPEG-compressed the way a
drawing or a photo would be, and ``to_mnist`` must give back what MNIST had, closely enough that a
network trained on MNIST reads them as well as the originals.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine.data.idx import read_idx
from engine.data.mnist import IMAGE_SIDE, PIXELS, load_sample
from engine.data.preprocess import (
    BOX,
    CENTRE,
    BlankImageError,
    centre_of_mass,
    enlarging_matrix,
    shift_matrix,
    shrink,
    to_mnist,
)
from engine.network import Network
from engine.training import TrainConfig, Trainer

ROUND_TRIPS = 500
SQUARE = (IMAGE_SIDE, IMAGE_SIDE)


def mean_centre_of_mass(images: np.ndarray) -> np.ndarray:
    """The mean (row, column) centre of mass of rows of 784 pixels."""
    digits = images.reshape(-1, *SQUARE)
    row_sums, column_sums = (
        digits.sum(axis=2, dtype=np.float64),
        digits.sum(axis=1, dtype=np.float64),
    )
    mass = row_sums.sum(axis=1)
    rows = row_sums @ np.arange(IMAGE_SIDE) / mass
    columns = column_sums @ np.arange(IMAGE_SIDE) / mass
    return np.array([rows.mean(), columns.mean()])


def disguise(digit: np.ndarray, seed: int) -> np.ndarray:
    """An MNIST digit as someone might upload it: 100-400 px, off centre, maybe inverted or JPEG."""
    rng = np.random.default_rng(seed)
    side = int(rng.integers(100, 400))
    image = Image.fromarray(np.round(digit.reshape(SQUARE) * 255).astype(np.uint8))
    pixels = np.asarray(image.resize((side, side), Image.Resampling.BICUBIC))
    top, bottom, left, right = rng.integers(0, 120, size=4)
    pixels = np.pad(pixels, ((top, bottom), (left, right)))
    if seed % 2:
        pixels = 255 - pixels
    if seed % 3 == 0:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=75)
        pixels = np.asarray(Image.open(buffer))
    return pixels.astype(np.float32) / 255


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def round_trip(sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(original digits, the same digits disguised and preprocessed back, labels)."""
    originals = sample.test_images[:ROUND_TRIPS]
    recovered = np.stack([to_mnist(disguise(digit, seed)) for seed, digit in enumerate(originals)])
    return originals, recovered, sample.test_labels[:ROUND_TRIPS]


@pytest.fixture(scope="module")
def network(sample) -> Network:
    """A 784-128-10 network trained on the sample's 8,000 training digits."""
    config = TrainConfig(
        hidden=(128,), activation="relu", loss="cross-entropy", optimizer="adam", lr=0.002,
        epochs=3,
    )  # fmt: skip
    trainer = Trainer(config, sample)
    while not trainer.finished:
        trainer.step()
    return trainer.network


def test_mnist_digits_have_their_centre_of_mass_at_centre(sample):
    assert np.abs(mean_centre_of_mass(sample.train_images) - CENTRE).max() < 0.02


def test_full_mnist_training_set_has_its_centre_of_mass_at_centre(mnist_dir):
    images = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")
    assert np.abs(mean_centre_of_mass(images) - CENTRE).max() < 0.02


def test_output_is_784_values_in_unit_range(round_trip):
    _, recovered, _ = round_trip
    assert recovered.shape == (ROUND_TRIPS, PIXELS)
    assert recovered.dtype == np.float32
    assert recovered.min() >= 0 and recovered.max() <= 1
    # The strongest ink becomes 1 (before resampling blurs the thinnest strokes a little).
    assert np.median(recovered.max(axis=1)) > 0.95


def test_every_output_has_its_centre_of_mass_at_mnists(round_trip):
    _, recovered, _ = round_trip
    centres = np.array([centre_of_mass(digit.reshape(SQUARE)) for digit in recovered])
    assert np.abs(centres - CENTRE).max() < 0.1


def test_round_trip_gives_back_the_mnist_digit(round_trip):
    originals, recovered, _ = round_trip
    correlations = [np.corrcoef(a, b)[0, 1] for a, b in zip(originals, recovered)]
    assert np.mean(correlations) > 0.9
    assert np.min(correlations) > 0.6
    assert np.abs(originals - recovered).mean() < 0.06


def test_network_reads_round_tripped_digits_as_well_as_originals(round_trip, network):
    originals, recovered, labels = round_trip
    original_accuracy = np.mean(network.predict(originals).argmax(axis=1) == labels)
    recovered_accuracy = np.mean(network.predict(recovered).argmax(axis=1) == labels)
    assert original_accuracy > 0.85
    assert recovered_accuracy > original_accuracy - 0.02


def test_polarity_does_not_matter(sample):
    digit = disguise(sample.test_images[0], seed=0)
    assert np.allclose(to_mnist(digit), to_mnist(1 - digit), atol=1e-6)


def test_position_on_the_page_does_not_matter(sample):
    digit = np.kron(sample.test_images[1].reshape(SQUARE), np.ones((6, 6), np.float32))
    top_left = np.pad(digit, ((3, 90), (5, 70)))
    bottom_right = np.pad(digit, ((80, 2), (60, 1)))
    assert np.allclose(to_mnist(top_left), to_mnist(bottom_right), atol=1e-6)


def test_size_on_the_page_does_not_matter(sample):
    digit = sample.test_images[2].reshape(SQUARE)
    small = to_mnist(np.kron(digit, np.ones((5, 5), np.float32)))
    large = to_mnist(np.kron(digit, np.ones((15, 15), np.float32)))
    assert np.abs(small - large).max() < 0.05


def test_an_mnist_digit_is_nearly_unchanged(sample):
    digit = sample.test_images[3]
    assert np.corrcoef(digit, to_mnist(digit.reshape(SQUARE)))[0, 1] > 0.95


@pytest.mark.parametrize(("height", "width"), [(200, 40), (40, 200), (150, 150), (21, 9)])
def test_longer_side_becomes_box_keeping_aspect_ratio(height, width):
    page = np.zeros((height + 50, width + 50), np.float32)
    page[10 : 10 + height, 20 : 20 + width] = 1
    digit = to_mnist(page).reshape(SQUARE)
    scale = BOX / max(height, width)
    # Area averaging and the fractional shift both keep the ink's total: the rectangle's area.
    assert digit.sum() == pytest.approx(height * scale * width * scale, rel=1e-4)
    assert centre_of_mass(digit) == pytest.approx(CENTRE, abs=1e-3)
    rows, columns = np.flatnonzero(digit.max(axis=1) > 0), np.flatnonzero(digit.max(axis=0) > 0)
    assert rows.size == pytest.approx(height * scale, abs=2)
    assert columns.size == pytest.approx(width * scale, abs=2)


def test_tiny_drawings_are_enlarged_to_the_box():
    page = np.zeros((30, 30), np.float32)
    page[10:17, 12:15] = 1
    digit = to_mnist(page).reshape(SQUARE)
    rows = np.flatnonzero(digit.max(axis=1) > 0.5)
    assert rows.size == pytest.approx(BOX, abs=2)
    assert centre_of_mass(digit) == pytest.approx(CENTRE, abs=1e-3)


def test_faint_noise_does_not_move_the_digit(sample):
    digit = 1 - np.kron(sample.test_images[4].reshape(SQUARE), np.ones((8, 8), np.float32))
    page = np.pad(digit, 40, constant_values=1)
    noise = np.random.default_rng(0).uniform(-0.04, 0, page.shape).astype(np.float32)
    noisy = np.clip(page + noise, 0, 1)
    assert np.abs(to_mnist(noisy) - to_mnist(page)).max() < 0.08


@pytest.mark.parametrize(
    "grey",
    [
        np.zeros((280, 280)),
        np.ones((280, 280)),
        np.full((50, 30), 0.4),
        np.zeros((1, 1)),
        np.ones((1, 1)),
        np.random.default_rng(0).uniform(0.5, 0.55, (100, 100)),
    ],
    ids=["black", "white", "grey", "1x1-black", "1x1-white", "faint-noise"],
)
def test_blank_pictures_are_refused(grey):
    with pytest.raises(BlankImageError, match="blank"):
        to_mnist(grey)


@pytest.mark.parametrize(
    "grey",
    [
        np.zeros(784),
        np.zeros((2, 28, 28)),
        np.zeros((0, 5)),
        np.full((4, 4), np.nan),
        np.eye(4) * 2,
    ],
    ids=["1-d", "3-d", "empty", "nan", "above-one"],
)
def test_bad_arrays_are_refused(grey):
    with pytest.raises(ValueError, match="grey") as caught:
        to_mnist(grey)
    assert not isinstance(caught.value, BlankImageError)


def test_blank_image_error_is_a_value_error():
    assert issubclass(BlankImageError, ValueError)


def overlap_matrix(length: int, scale: float) -> np.ndarray:
    """Area averaging by its definition: source pixel k lands on [k·scale, (k+1)·scale), and
    output pixel i takes from each source pixel the length that falls in [i, i+1)."""
    size = int(np.ceil(length * scale - 1e-9))
    outputs, sources = np.arange(size)[:, None], np.arange(length)[None, :]
    overlap = np.minimum(outputs + 1, (sources + 1) * scale) - np.maximum(outputs, sources * scale)
    return np.maximum(overlap, 0)


@pytest.mark.parametrize(("height", "width"), [(280, 200), (57, 33), (21, 21), (1000, 7)])
def test_shrinking_averages_the_area_under_each_pixel(height, width):
    image = np.random.default_rng(height).uniform(0, 1, (height, width)).astype(np.float32)
    scale = BOX / max(height, width)
    expected = overlap_matrix(height, scale) @ image @ overlap_matrix(width, scale).T
    shrunk = shrink(shrink(image, scale, axis=0), scale, axis=1)
    assert shrunk.shape == expected.shape
    assert np.allclose(shrunk, expected, atol=1e-4)
    assert shrunk.sum() == pytest.approx(image.sum() * scale * scale, rel=1e-4)


def test_enlarging_interpolates_linearly_between_pixel_centres():
    matrix = enlarging_matrix(5, 4.0)
    ramp = np.arange(5, dtype=np.float32)
    inside = slice(2, 18)  # away from the edges, where the ramp meets the zero beyond
    positions = (np.arange(20) + 0.5) / 4 - 0.5
    assert np.allclose((matrix @ ramp)[inside], positions[inside], atol=1e-5)


@pytest.mark.parametrize("shift", [0.0, 0.25, 3.5, 7.99, -1.3])
def test_shift_moves_the_centre_of_mass_exactly(shift):
    line = np.random.default_rng(1).uniform(0, 1, 20).astype(np.float32)
    line[:2] = line[-2:] = 0  # room to move without falling off the frame
    moved = shift_matrix(20, shift) @ line
    centre = np.arange(20) @ line / line.sum()
    assert np.arange(IMAGE_SIDE) @ moved / moved.sum() == pytest.approx(centre + shift, abs=1e-5)
    assert moved.sum() == pytest.approx(line.sum(), rel=1e-6)
