"""The training loop: shuffling, epochs, evaluation, divergence, schedules and augmentation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from engine.data.mnist import Dataset
from engine.network import Network
from engine.training import (
    ConfigError,
    Diverged,
    ExtraExamples,
    Limits,
    TrainConfig,
    Trainer,
    blas_libraries,
    blas_threads,
    gradient_stats,
    shift_images,
)


def make_dataset(train_size: int = 250, test_size: int = 40, seed: int = 0) -> Dataset:
    """Random digits whose first pixel spells their index, so a batch tells which it holds."""
    rng = np.random.default_rng(seed)
    train = rng.random((train_size, 784), dtype=np.float32)
    train[:, 0] = np.arange(train_size)
    return Dataset(
        name="sample",
        source="test",
        train_images=train,
        train_labels=rng.integers(0, 10, train_size).astype(np.uint8),
        test_images=rng.random((test_size, 784), dtype=np.float32),
        test_labels=rng.integers(0, 10, test_size).astype(np.uint8),
    )


def small_config(**changes) -> TrainConfig:
    values = {"hidden": (8,), "batch_size": 32, "epochs": 3, "lr": 0.5, **changes}
    return TrainConfig(**values)


def record_batches(trainer: Trainer) -> list[np.ndarray]:
    """Wrap the network's backward pass to note which examples each mini-batch held."""
    seen: list[np.ndarray] = []
    backward = trainer.network.backward

    def spy(x, labels, workspace=None):
        seen.append(x[:, 0].astype(int).copy())
        return backward(x, labels, workspace)

    trainer.network.backward = spy
    return seen


def test_every_example_once_per_epoch_in_a_new_order_including_the_partial_batch() -> None:
    dataset = make_dataset(train_size=250)
    trainer = Trainer(small_config(epochs=3), dataset)
    seen = record_batches(trainer)
    while not trainer.finished:
        trainer.step()
    assert trainer.batches_per_epoch == 8  # 7 full batches of 32 and one of 26
    orders = []
    for epoch in range(3):
        batches = seen[epoch * 8 : (epoch + 1) * 8]
        assert [len(b) for b in batches] == [32] * 7 + [26]
        order = np.concatenate(batches)
        np.testing.assert_array_equal(np.sort(order), np.arange(250))
        orders.append(order)
    assert not np.array_equal(orders[0], np.arange(250))
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[1], orders[2])


def test_evaluation_comes_with_the_last_batch_of_each_epoch() -> None:
    dataset = make_dataset()
    trainer = Trainer(small_config(epochs=2), dataset)
    reports = []
    while not trainer.finished:
        reports.append(trainer.step())
    with_evaluation = [r.index for r in reports if r.evaluation is not None]
    assert with_evaluation == [7, 15]
    assert [r.epoch for r in reports] == [0] * 8 + [1] * 8
    assert reports[-1].examples_seen == 500
    last = reports[-1].evaluation
    output = trainer.network.predict(dataset.test_images)
    accuracy = np.mean(output.argmax(axis=1) == dataset.test_labels)
    assert last.accuracy == pytest.approx(accuracy)
    assert last.cost == pytest.approx(
        trainer.network.cost(dataset.test_images, dataset.test_labels)
    )
    assert (last.epoch, last.examples_seen) == (2, 500)
    assert trainer.progress.evaluations == [reports[7].evaluation, last]
    with pytest.raises(RuntimeError, match="finished"):
        trainer.step()


def test_batch_reports_carry_the_cost_and_gradient_statistics() -> None:
    trainer = Trainer(small_config(hidden=(8, 6)), make_dataset())
    report = trainer.step()
    gradients = trainer.last_gradients
    assert report.cost == gradients.cost and math.isfinite(report.cost)
    assert len(report.gradient_stats) == 3
    for stats, w, b in zip(report.gradient_stats, gradients.weights, gradients.biases):
        assert stats.weight_norm == pytest.approx(np.linalg.norm(w), rel=1e-5)
        assert stats.bias_norm == pytest.approx(np.linalg.norm(b), rel=1e-5)
        assert stats.mean_abs == pytest.approx(np.abs(w).mean(), rel=1e-5)
    assert gradient_stats(gradients) == report.gradient_stats


def test_training_lowers_the_cost() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 400).astype(np.uint8)
    images = rng.random((10, 784), dtype=np.float32)[labels]  # one fixed pattern per digit
    dataset = Dataset("sample", "test", images, labels, images[:100], labels[:100])
    config = small_config(hidden=(16,), loss="cross-entropy", optimizer="adam", lr=0.01, epochs=5)
    trainer = Trainer(config, dataset)
    before = trainer.evaluate().cost
    while not trainer.finished:
        trainer.step()
    evaluations = trainer.progress.evaluations
    assert evaluations[-1].cost < before / 2
    assert evaluations[-1].accuracy == 1.0


def test_same_seed_and_data_give_identical_weights() -> None:
    config = small_config(hidden=(16, 8), optimizer="adam", lr=0.01, augment_shift=1)
    runs = [Trainer(config, make_dataset()) for _ in range(2)]
    runs.append(
        Trainer(small_config(hidden=(16, 8), optimizer="adam", lr=0.01, seed=1), runs[0].dataset)
    )
    for trainer in runs:
        for _ in range(12):
            trainer.step()
    for first, second, other in zip(*(t.network.weights for t in runs)):
        np.testing.assert_array_equal(first, second)
        assert not np.array_equal(first, other)


def test_a_non_finite_cost_raises_diverged_and_leaves_the_weights_alone() -> None:
    dataset = make_dataset()
    dataset.train_images[:, 5] = np.nan  # every batch now has an input that is not a number
    trainer = Trainer(small_config(), dataset)
    weights = [w.copy() for w in trainer.network.weights + trainer.network.biases]
    with pytest.raises(Diverged) as raised:
        trainer.step()
    assert "the cost became nan at mini-batch 0 (epoch 1)" in str(raised.value)
    assert "learning rate 0.5" in str(raised.value)
    for before, after in zip(weights, trainer.network.weights + trainer.network.biases):
        np.testing.assert_array_equal(before, after)
    assert trainer.progress.batch_index == 0 and trainer.progress.examples_seen == 0


def test_a_learning_rate_far_too_high_diverges_with_a_clear_message() -> None:
    trainer = Trainer(
        small_config(hidden=(32, 32, 32), activation="relu", loss="cross-entropy", epochs=50),
        make_dataset(),
    )
    trainer.lr = 100  # the highest a config allows
    with pytest.raises(Diverged) as raised:
        while not trainer.finished:
            trainer.step()
            snapshot = [w.copy() for w in trainer.network.weights]
    message = str(raised.value)
    assert "the cost became" in message and "learning rate 100 is probably too high" in message
    for before, after in zip(snapshot, trainer.network.weights):
        np.testing.assert_array_equal(before, after)


def test_learning_rate_changes_apply_to_the_next_batch() -> None:
    trainer = Trainer(small_config(), make_dataset())
    trainer.step()
    trainer.lr = 0.05
    assert trainer.optimizer.lr == 0.05
    weights = trainer.network.weights[0].copy()
    trainer.step()
    gradient = trainer.last_gradients.weights[0]
    np.testing.assert_allclose(trainer.network.weights[0], weights - 0.05 * gradient, atol=1e-7)
    for bad in (0.0, -1.0, 100.5, math.nan, math.inf, "1"):
        with pytest.raises(ConfigError) as raised:
            trainer.lr = bad
        assert str(raised.value) == "lr: must be a number above 0 and at most 100"


def test_weight_decay_shrinks_weights_but_not_biases_or_reported_gradients() -> None:
    dataset = make_dataset()
    plain = Trainer(small_config(), dataset)
    decayed = Trainer(small_config(weight_decay=0.1), dataset)
    weights = decayed.network.weights[0].copy()
    biases = decayed.network.biases[0].copy()
    plain.step()
    decayed.step()
    gradients = decayed.last_gradients
    np.testing.assert_allclose(
        decayed.network.weights[0],
        weights - 0.5 * (gradients.weights[0] + 0.1 * weights),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        decayed.network.biases[0], biases - 0.5 * gradients.biases[0], atol=1e-6
    )
    np.testing.assert_array_equal(gradients.weights[0], plain.last_gradients.weights[0])


def test_cosine_schedule_anneals_the_step_from_lr_to_zero() -> None:
    trainer = Trainer(small_config(lr_schedule="cosine", epochs=2), make_dataset())
    scales = []
    while not trainer.finished:
        scales.append(trainer.lr_scale())
        trainer.step()
        assert trainer.optimizer.lr == 0.5  # the rate a person set stays what they set
    assert scales[0] == 1.0
    assert scales[8] == pytest.approx(0.5)  # halfway through 16 mini-batches
    assert all(a > b for a, b in itertools.pairwise(scales))
    assert 0 < scales[-1] < 0.01
    assert Trainer(small_config(), make_dataset()).lr_scale() == 1.0


def test_shift_images_moves_each_digit_by_its_own_offset() -> None:
    images = np.zeros((3, 784), np.float32)
    images[:, 10 * 28 + 12] = 1.0  # a dot at row 10, column 12
    images[2, 0] = 0.5  # a corner pixel that a shift pushes off the canvas
    shifts = np.array([[0, 0], [2, -1], [-1, 1]])
    shift_images(images, shifts, 2, np.zeros((3, 32, 32), np.float32))
    squares = images.reshape(3, 28, 28)
    assert squares[0, 10, 12] == 1.0 and squares[0].sum() == 1.0
    assert squares[1, 12, 11] == 1.0 and squares[1].sum() == 1.0
    assert squares[2, 9, 13] == 1.0 and squares[2].sum() == 1.0


def test_augmentation_shifts_training_batches_only() -> None:
    dataset = make_dataset()
    pristine = dataset.train_images.copy()
    trainer = Trainer(small_config(augment_shift=2), dataset)
    trainer.step()
    originals = dataset.train_images[trainer._order[32:64]]
    trainer.step()
    moved = trainer._batch_buffers[32].reshape(32, 28, 28)
    centres = originals.reshape(32, 28, 28)[:, 2:26, 2:26]
    matches = sum(
        any(
            np.array_equal(moved[i, 2 + dy : 26 + dy, 2 + dx : 26 + dx], centres[i])
            for dy in range(-2, 3)
            for dx in range(-2, 3)
        )
        for i in range(32)
    )
    assert matches == 32
    assert not np.array_equal(moved.reshape(32, 784), originals)
    np.testing.assert_array_equal(dataset.train_images, pristine)


def test_blas_threads_one_for_tiny_networks_all_for_large() -> None:
    assert blas_threads((784, 16, 16, 10), 100) == 1
    assert blas_threads((784, 256, 128, 10), 256) is None


def test_a_step_leaves_blas_with_the_threads_its_network_wants() -> None:
    dataset = make_dataset()
    initial = [count for _, count in blas_libraries()]
    Trainer(small_config(), dataset).step()
    assert [library.num_threads for library, _ in blas_libraries()] == [1] * len(initial)
    Trainer(small_config(hidden=(512, 512), batch_size=128), dataset).step()
    assert [library.num_threads for library, _ in blas_libraries()] == initial


def test_mini_batches_gathered_from_the_bytes_are_exactly_the_training_images() -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (250, 784)).astype(np.uint8)
    images = pixels.astype(np.float32)
    images /= 255
    labels = rng.integers(0, 10, 250).astype(np.uint8)
    dataset = Dataset("sample", "test", images, labels, images[:40], labels[:40], pixels)
    trainer = Trainer(small_config(), dataset)
    batches = []
    backward = trainer.network.backward

    def keep(x, labels, workspace=None):
        batches.append(x.copy())
        return backward(x, labels, workspace)

    trainer.network.backward = keep
    for _ in range(3):
        trainer.step()
    for batch, x in enumerate(batches):
        rows = trainer._order[batch * 32 : (batch + 1) * 32]
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x, images[rows])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hidden": ()}, "hidden"),
        ({"hidden": (16,) * 5}, "hidden"),
        ({"hidden": (513,)}, "hidden"),
        ({"activation": "swish"}, "activation"),
        ({"loss": "hinge"}, "loss"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"lr": 0.0}, "lr"),
        ({"lr": math.nan}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"seed": -1}, "seed"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"augment_shift": 5}, "augment_shift"),
        ({"augment_shift": 1.5}, "augment_shift"),
    ],
)
def test_config_errors_name_the_field(changes, field) -> None:
    with pytest.raises(ConfigError) as raised:
        TrainConfig(**changes)
    assert raised.value.field == field


def test_limits_admit_their_range_and_type_and_say_which_in_words() -> None:
    lr = Limits("learning rate", low=0, above_low=True, high=100)
    admitted = [lr.admits(v, float) for v in (0, 1e-300, 3, 100, 100.5, math.nan, True, "3")]
    assert admitted == [False, True, True, True, False, False, False, False]
    assert lr.describe(float) == "a number above 0 and at most 100"

    seed = Limits("seed", low=0, high=2**32 - 1)
    assert seed.admits(2**32 - 1, int) and not seed.admits(1.0, int)
    assert not seed.admits(10**400, int)  # too big for a float, and refused, not an error
    assert seed.describe(int) == "a whole number from 0 to 4294967295"

    sizes = Limits("units", low=1, high=512, length=(1, 4))
    assert sizes.admits((1, 512), tuple[int, ...])
    assert not any(sizes.admits(v, tuple[int, ...]) for v in [(), (1,) * 5, (0,), (16.5,)])
    assert sizes.describe(tuple[int, ...]) == "1 to 4 whole numbers, each from 1 to 512"

    names = Limits("activation", choices=("sigmoid", "relu"))
    assert names.admits("relu", str) and not names.admits(["relu"], str)
    assert names.describe(str) == "one of sigmoid, relu"


def test_config_errors_say_what_the_field_admits() -> None:
    with pytest.raises(ConfigError) as raised:
        TrainConfig(hidden=(16, 600))
    assert str(raised.value) == "hidden: must be 1 to 4 whole numbers, each from 1 to 512"


def test_config_round_trips_through_a_dict() -> None:
    config = TrainConfig(hidden=(64, 32), lr_schedule="cosine", augment_shift=1)
    values = config.to_dict()
    assert values["hidden"] == [64, 32]
    assert TrainConfig.from_dict({**values, "unknown": 1}) == config


def test_trainer_accepts_a_network_it_did_not_make() -> None:
    network = Network((784, 8, 10), seed=7)
    trainer = Trainer(small_config(), make_dataset(), network=network)
    assert trainer.network is network


def drawn_examples(count: int = 12, seed: int = 5) -> ExtraExamples:
    """Extra examples that are blank but for one bright pixel in the middle, to see shifts."""
    images = np.zeros((count, 784), np.float32)
    images[:, 14 * 28 + 14] = 1.0
    labels = np.random.default_rng(seed).integers(0, 10, count).astype(np.uint8)
    return ExtraExamples(images, labels)


def test_extra_examples_join_every_batch_and_the_dataset_is_still_seen_once_per_epoch() -> None:
    dataset = make_dataset(train_size=250)
    trainer = Trainer(small_config(epochs=2), dataset)
    trainer.extra_examples = drawn_examples(count=12)
    batches: list[tuple[np.ndarray, np.ndarray]] = []
    backward = trainer.network.backward

    def spy(x, labels, workspace=None):
        batches.append((x.copy(), labels.copy()))
        return backward(x, labels, workspace)

    trainer.network.backward = spy
    while not trainer.finished:
        trainer.step()
    added = 3  # 10% of a batch of 32 (or 26), rounded
    for epoch in range(2):
        epoch_batches = [x for x, _ in batches[epoch * 8 : (epoch + 1) * 8]]
        assert [len(x) for x in epoch_batches] == [32 + added] * 7 + [26 + added]
        order = np.concatenate([x[:-added, 0] for x in epoch_batches]).astype(int)
        np.testing.assert_array_equal(np.sort(order), np.arange(250))


def test_extra_examples_move_a_little_each_and_leave_the_batch_as_it_was() -> None:
    extra = ExtraExamples(drawn_examples(count=12).images, np.arange(12) % 10, share=0.5)
    own_images = np.ones((10, 784), np.float32)
    own_labels = np.full(10, 9, np.uint8)
    offsets = set()
    for seed in range(20):
        images, labels = extra.mixed_into(own_images, own_labels, np.random.default_rng(seed))
        assert images.shape == (15, 784) and labels.shape == (15,)
        np.testing.assert_array_equal(images[:10], own_images)
        np.testing.assert_array_equal(labels[:10], own_labels)
        for square in images[10:].reshape(5, 28, 28):
            rows, columns = np.nonzero(square == 1.0)
            assert len(rows) == 1, "the bright pixel moves as a whole"
            offset = (int(rows[0]) - 14, int(columns[0]) - 14)
            assert max(abs(offset[0]), abs(offset[1])) <= extra.max_shift
            offsets.add(offset)
    assert len(offsets) > 10, "the shifts vary"


def test_extra_examples_keep_their_labels_when_drawn() -> None:
    images = np.zeros((10, 784), np.float32)
    images[np.arange(10), 300 + np.arange(10)] = 1.0  # example d lights pixel 300 + d
    labels = np.arange(10, dtype=np.uint8)
    extra = ExtraExamples(images, labels, share=1.0, max_shift=0)
    mixed, mixed_labels = extra.mixed_into(
        np.zeros((4, 784), np.float32), np.zeros(4, np.uint8), np.random.default_rng(0)
    )
    lit = np.argmax(mixed[4:], axis=1) - 300
    np.testing.assert_array_equal(lit, mixed_labels[4:])
    assert sorted(lit.tolist()) == sorted(set(lit.tolist())), "no example twice in one batch"


def test_training_with_extra_examples_is_reproducible_and_learns_them() -> None:
    dataset = make_dataset(train_size=256)
    rng = np.random.default_rng(3)
    images = (rng.random((20, 784)) < 0.2).astype(np.float32)
    labels = rng.integers(0, 10, 20).astype(np.uint8)
    runs = []
    for _ in range(2):
        trainer = Trainer(small_config(hidden=(32,), epochs=20, lr=3.0), dataset)
        trainer.extra_examples = ExtraExamples(images, labels, share=0.25, max_shift=0)
        before = trainer.network.cost(images, labels)
        while not trainer.finished:
            trainer.step()
        runs.append(trainer)
    assert all(
        np.array_equal(a, b) for a, b in zip(runs[0].network.weights, runs[1].network.weights)
    )
    assert runs[0].network.cost(images, labels) < before / 2
    assert np.mean(runs[0].network.predict(images).argmax(axis=1) == labels) >= 0.9


@pytest.mark.parametrize(
    ("images", "labels"),
    [(np.zeros((3, 10), np.float32), np.zeros(3)), (np.zeros((3, 784), np.float32), np.zeros(2))],
)
def test_extra_examples_refuse_arrays_that_are_not_digits(images, labels) -> None:
    with pytest.raises(ValueError, match="extra examples"):
        ExtraExamples(images, labels)


def test_a_batch_larger_than_the_training_set_is_all_of_it_once_an_epoch() -> None:
    dataset = make_dataset(train_size=250)
    trainer = Trainer(small_config(batch_size=60_000), dataset)
    seen = record_batches(trainer)
    assert trainer.batches_per_epoch == 1
    report = trainer.step()
    assert sorted(seen[0]) == list(range(250))
    assert (report.examples_seen, report.evaluation is not None) == (250, True)
    assert trainer.progress.epoch == 1


def test_the_batch_size_goes_up_to_the_full_training_set() -> None:
    assert TrainConfig(batch_size=60_000).batch_size == 60_000
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(batch_size=60_001)
