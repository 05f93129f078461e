"""The websocket frames: compact encodings that still say what the network is doing."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from engine.data.mnist import CLASSES, IMAGE_SIDE, load_sample
from engine.network import Network
from engine.training import TrainConfig, Trainer
from server.bodies import classification
from server.frames import (
    EXPLAIN_STEPS,
    SECONDS_DIGITS,
    batch_frames,
    dequantise,
    encode,
    quantise,
    significant,
    significant_list,
    snapshot_frame,
)
from server.history import History
from server.trainer.probe import Probe, choose_probe
from server.trainer.protocol import BatchRecord, CostRecord, Snapshot
from server.trainer.run import LiveRun


@pytest.fixture(scope="module")
def trained() -> tuple[LiveRun, list[BatchRecord]]:
    run = LiveRun(Trainer(TrainConfig(hidden=(16, 16), batch_size=1000, epochs=3), load_sample()))
    records = [run.train_one() for _ in range(12)]  # 8 mini-batches per epoch: crosses one end
    return run, records


def test_quantised_weights_are_within_half_a_step() -> None:
    matrix = np.random.default_rng(1).normal(size=(16, 784)).astype(np.float32)
    packed = quantise(matrix)
    assert packed["shape"] == [16, 784]
    assert len(base64.b64decode(packed["data"])) == 16 * 784
    step = packed["scale"] / 127
    assert np.abs(dequantise(packed) - matrix).max() <= step / 2 + 1e-6
    assert not dequantise(quantise(np.zeros((2, 3)))).any()


def test_significant_digits_print_short_and_nulls_stand_for_non_finite() -> None:
    assert significant(0.123456789) == 0.12346
    assert significant(float("nan")) is None
    values = significant_list(np.array([0.000123456, -12345.6, 0.0, np.inf, 3.14159]))
    assert values == [0.0001235, -12350.0, 0.0, None, 3.142]
    assert json.dumps(values) == "[0.0001235, -12350.0, 0.0, null, 3.142]"


def test_batch_frames_cover_every_batch_once_and_cut_at_the_epoch_end(trained) -> None:
    _, records = trained
    frames = batch_frames(records)
    assert [frame["type"] for frame in frames] == ["batches", "eval", "batches"]
    costs = [cost for frame in frames if frame["type"] == "batches" for cost in frame["costs"]]
    assert costs == [significant(record.cost) for record in records]
    assert (frames[0]["first_batch"], frames[0]["epoch"]) == (0, 0)
    assert (frames[2]["first_batch"], frames[2]["epoch"]) == (8, 1)
    assert (frames[1]["batch"], frames[1]["epoch"]) == (7, 1)
    assert len(frames[2]["gradients"]) == 3
    # the run's training seconds, after batch 7
    assert frames[0]["seconds"] == round(records[7].seconds, SECONDS_DIGITS)
    assert [frame["lane"] for frame in frames] == [None] * 3  # not a race's


def test_a_lanes_frames_say_which_lane(trained) -> None:
    run, records = trained
    lane = [dataclasses.replace(record, lane=2) for record in records]
    assert [frame["lane"] for frame in batch_frames(lane)] == [2, 2, 2]
    probe = choose_probe(load_sample())
    snapshot = dataclasses.replace(run.snapshot(probe.pixels), lane=2)
    assert snapshot_frame(snapshot, probe)["lane"] == 2


def test_history_halves_its_resolution_but_keeps_the_means() -> None:
    run = LiveRun(Trainer(TrainConfig(hidden=(4,), batch_size=500, epochs=2), load_sample()), "r")
    records = [run.train_one() for _ in range(21)]
    history = History(max_points=4)
    for record in records:
        history.add(record)
    frame = history.frame()
    assert (frame["first_batch"], frame["next_batch"]) == (0, 21)
    assert frame["stride"] == 8 and len(frame["costs"]) == 3  # 8 + 8 + 5 batches
    expected = np.mean([record.cost for record in records[8:16]])
    assert frame["costs"][1] == pytest.approx(expected, rel=1e-4)
    assert len(frame["evaluations"]) == 1


def test_a_restored_history_draws_the_same_chart() -> None:
    run = LiveRun(Trainer(TrainConfig(hidden=(4,), batch_size=500, epochs=2), load_sample()), "r")
    records = [run.train_one() for _ in range(21)]
    live = History()
    for record in records:
        live.add(record)
    stored = CostRecord(
        0,
        np.array([record.cost for record in records]),
        np.array([[stats.weight_norm for stats in record.gradients] for record in records]),
        [(record.index, record.evaluation) for record in records if record.evaluation],
    )
    assert History.restored("r", stored).frame() == live.frame()


def test_snapshot_shows_the_probe_and_the_mean_nudges(trained) -> None:
    run, _ = trained
    trainer = run.trainer
    probe = choose_probe(trainer.dataset)
    assert probe.label == 2
    snapshot = snapshot_frame(run.snapshot(probe.pixels), probe)
    text = encode(snapshot)
    assert len(text) < 60_000  # compact: 3Blue1Brown's network in tens of kB
    output = trainer.network.forward(probe.pixels[None, :]).output[0]
    assert np.allclose(snapshot["activations"][-1], output, atol=1e-4)
    # The nudge is the desired change, −dC/da: not the gradient itself.
    mean_nudge = -trainer.last_gradients.activation_gradients[0].sum(axis=0)
    assert np.abs(mean_nudge).max() > 1e-6
    assert np.allclose(snapshot["nudges"][0], mean_nudge, rtol=1e-3, atol=1e-9)
    maps = dequantise(snapshot["gradient_maps"])
    assert maps.shape == (16, 784)
    assert (
        np.abs(maps - trainer.last_gradients.weights[0]).max()
        <= snapshot["gradient_maps"]["scale"] / 127
    )
    fresh_run = LiveRun(Trainer(TrainConfig(hidden=(3,)), trainer.dataset))
    fresh = snapshot_frame(fresh_run.snapshot(probe.pixels), probe)
    assert fresh["nudges"] is None and fresh["gradient_maps"] is None


def test_classification_answers_with_the_network_as_it_is(trained) -> None:
    trainer = trained[0].trainer
    digit = trainer.dataset.test_images[0]
    answer = classification(trainer.network, digit)
    output = trainer.network.predict(digit[None, :])[0]
    assert answer["digit"] == int(output.argmax())
    assert sum(answer["probabilities"]) == pytest.approx(1, abs=1e-3)
    assert [len(layer) for layer in answer["activations"]] == [16, 16, 10]


def test_a_diverged_network_still_encodes_with_nulls() -> None:
    network = Network((784, 4, 10), activation="relu", loss="cross-entropy")
    network.weights[0][:] = np.inf
    network.biases[1][3] = np.nan
    probe = Probe(0, 2, np.full(784, 0.5, np.float32))
    with np.errstate(invalid="ignore"):  # inf weights make NaN: the point of the test
        activations = [a[0] for a in network.forward(probe.pixels[None, :]).activations[1:]]
        diverged = Snapshot("r", 1, network, activations, None, None)
        snapshot = json.loads(encode(snapshot_frame(diverged, probe)))
    assert None in snapshot["activations"][0] and snapshot["biases"][1][3] is None
    assert snapshot["weights"][0]["scale"] == 0.0  # nothing finite to scale by


def test_the_browser_mirrors_the_facts_it_cannot_import() -> None:
    """``static/js/frames.js`` holds the browser's one copy of the numbers Python defines."""
    script = (Path(__file__).parents[2] / "static" / "js" / "frames.js").read_text()
    declared = {name: int(value) for name, value in re.findall(r"const (\w+) = (\d+);", script)}
    assert declared["IMAGE_SIDE"] == IMAGE_SIDE
    assert declared["EXPLAIN_STEPS"] == EXPLAIN_STEPS
    assert declared["DIGITS"] == CLASSES
