"""The websocket frames: what the server tells every browser about the run, defined once.

Every frame is one JSON text message with a ``type``. ``static/js/frames.js`` mirrors this
module for the browser; nothing else invents a field. Numbers are rounded to what a canvas can
show, and the heavy arrays travel as base64 bytes with a scale, so a snapshot of 3Blue1Brown's
16-16 network is about 40 kB instead of 300 kB of JSON floats.

Encodings
    quantised matrix  ``{shape: [rows, cols], scale, data}``: ``data`` is base64 of
                      ``rows * cols`` int8 values, row-major; value ≈ int8 * scale / 127,
                      where ``scale`` is the largest magnitude in the matrix (0 if all zero).
    pixels            base64 of 784 uint8 values (0 = no ink, 255 = full ink), row-major 28x28.
    costs             5 significant digits. Activations: 4 decimals. Biases and nudges: 4
                      significant digits. Training seconds: 3 decimals. ``null`` stands for a
                      value that is not finite.

Connecting
    ``/ws``; a page that reconnects adds ``?run=ID&next=N``: the run it followed and the next
    batch index it waits for (``first_batch + len(costs)`` of its last ``batches`` frame, or
    the hello's ``history.next_batch``). If the server (this process, or another one that
    follows the same trainer) still has batch ``N`` of that run, no hello comes: the
    ``batches`` continue exactly at ``N``, then a ``status`` and the latest ``snapshot``;
    otherwise a ``hello`` starts the page over. A malformed value is closed with 1008.

Frames (server → client)
    hello     ``{type, run, model, viewers, history, race}`` on connect. ``run`` is GET /api/run;
              ``model`` is ``{layer_sizes, activation, loss, weights: [quantised matrix],
              biases}``; ``history`` is ``{first_batch, next_batch, stride, costs,
              gradient_norms, evaluations}``: point ``i`` is the mean over the ``stride``
              mini-batches from ``first_batch + i * stride`` (the last point may cover fewer),
              ``gradient_norms[i]`` the mean weight-gradient norm per layer over the same
              batches, ``evaluations`` every ``eval`` frame of the run so far (without
              ``type``). The live ``batches`` continue exactly at ``next_batch``. The latest
              ``snapshot`` follows the hello at once. ``race`` is null, or during a race GET
              /api/race in which every lane also has ``history`` (as above, for that lane's
              run) and ``model`` (as above); the latest snapshot of every lane follows the
              hello, and each lane's ``batches`` continue at its history's ``next_batch``.
              During a race ``run``, ``model`` and ``history`` are lane 0's.
    batches   ``{type, run, lane, epoch, first_batch, costs, examples_seen, gradients, time,
              seconds}``: the
              cost of every mini-batch since the previous ``batches`` frame; ``costs[i]`` belongs
              to global batch ``first_batch + i``, all in ``epoch`` (counting from 0).
              ``examples_seen`` and ``gradients`` (per layer 1..L: ``{weight_norm, bias_norm,
              mean_abs}``) are those after the last batch; ``time`` is the server's Unix time
              when that batch was trained, ``seconds`` the run's training seconds after it.
              A client that keeps reading sees every batch index exactly once, in order, with
              no gaps (during a race: of every lane, in order per lane).
    eval      ``{type, run, lane, epoch, batch, accuracy, cost, examples_seen}``: the test-set score
              after ``epoch`` full epochs; sent right after the ``batches`` frame that holds
              ``batch``, the last mini-batch of that epoch.
    snapshot  ``{type, run, lane, batch, layer_sizes, weights, biases, probe, activations,
              nudges, gradient_maps}``: the network after ``batch`` mini-batches; latest wins
              (per lane during a race), at most about 10 per second per client and lane.
              ``weights``: quantised ``[n_out, n_in]`` per layer; ``probe``: ``{index, label,
              pixels}``, a fixed test digit; ``activations``: the probe's activations per layer
              1..L; ``nudges``: the desired change of every neuron's activation per layer 1..L,
              −dC/da averaged over the latest mini-batch (positive: the cost falls if the neuron
              grows); ``gradient_maps``: quantised dC/dW of layer 1, ``[n_hidden1, 784]`` (row j
              is a 28x28 image). ``nudges`` and ``gradient_maps`` are ``null`` before a run's
              first mini-batch.
    status    ``{type, run, message, viewers, race}``: on every status change (idle, running,
              paused, finished, diverged) of the run or of a race or any of its lanes, config,
              learning-rate or speed change, and when the number of viewers changes. ``run`` is
              GET /api/run (during a race: lane 0's run); ``race`` null, or GET /api/race.
    explain   ``{type, run, batch, step, example, key, neuron, lesson}``: the presenter's place
              in the walk-through of one example's backpropagation, so every viewer follows it.
              ``step`` is 1..``EXPLAIN_STEPS`` (null: the walk-through has ended); ``example`` is
              ``{index, label, pixels}`` (``index`` of the test digit, null for a drawing;
              ``pixels`` encoded as above); ``key`` names the trace on screen (a short hex
              string; null when ended): viewers fetch it from GET /api/explain/{key}, which
              answers as POST /api/explain did; ``neuron`` the output neuron whose levers step 3
              shows; ``lesson`` null, or after POST /api/teach ``{lr, cost_before, cost_after,
              output_before, output_after}`` (and ``key`` then names the trace with the taught
              weights). ``run`` and ``batch`` say which network the presenter explained. The
              latest one is sent to every client that connects.
    gallery   ``{type, run, batch, version, settings, capacity, count, accuracy, confusion,
              training, held_out, items, evaluations, test}``: the room's drawings (POST
              /api/gallery) as the network reads them after ``batch`` mini-batches of run
              ``run``. Sent when drawings arrive, are hidden or deleted, when a setting
              changes, at every evaluation, and every few seconds while the run trains; latest
              wins, and the latest one is sent to every client that connects. Hidden drawings
              are not in it at all. ``version`` counts changes of the drawings and settings (a
              new reading alone keeps it). ``settings``: ``{learn, hold_out, names}``;
              ``capacity``: the most drawings the gallery keeps. ``items``, oldest first:
              ``{id, label, digit, confidence, held_out}``, and ``author`` (a first name or null)
              only while ``settings.names`` is on; ``label`` is the digit its author meant,
              ``digit`` the network's reading, ``confidence`` the probability it gives that
              reading (2 decimals); the picture is GET /api/gallery/{id}/image.png. ``count``:
              the drawings in ``items``; ``accuracy``: the share read right (null without
              drawings); ``confusion``: 10x10 counts, row = ``label``, column = ``digit``, summing
              to ``count``. ``training`` and ``held_out``: ``{count, accuracy}`` of the two halves
              (with ``hold_out`` off, every drawing is in ``training``). ``evaluations``: the
              room's score at every evaluation of this run so far, ``{epoch, batch, count,
              accuracy, training, held_out}``, ``batch`` being the epoch's last mini-batch (an
              index, as in ``eval``). ``test``: the MNIST test digits read by the network after
              ``batch`` mini-batches, ``{epoch, batch, accuracy, confusion}`` (at every
              evaluation, and when a run starts); null until the first is computed.

``run`` inside ``batches``, ``eval`` and ``snapshot`` is the run id (a string, new for every
fresh network); a client that sees a new id starts its charts again. ``lane`` in them is the
race lane (from 0) whose run it is, null outside a race.

Mini-batches are numbered from 0 across epochs. An *index* names one mini-batch: ``first_batch``
(and ``costs[i]``) of ``batches``, ``batch`` of ``eval`` and of ``gallery``'s ``evaluations``
(the epoch's last), ``first_batch`` and ``next_batch`` of ``history``. A *count* says how many
mini-batches the network has been trained on: ``batch`` of GET /api/run (so of ``hello`` and
``status``), of ``snapshot``, of ``explain``, and of ``gallery`` and its ``test``. A count is
also the index of the next mini-batch, so at the end of a first epoch of ten mini-batches the
``eval`` frame has ``batch`` 9 and the snapshot made then ``batch`` 10.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np

from engine.explain import Lesson
from engine.training import Evaluation, LayerGradientStats
from server.gallery import GallerySettings
from server.scores import RoomScores, Score
from server.trainer.probe import Probe
from server.trainer.protocol import BatchRecord, Snapshot

COST_DIGITS = 5
VALUE_DIGITS = 4
ACTIVATION_DECIMALS = 4
SECONDS_DIGITS = 3  # decimals of training seconds: a millisecond is finer than any chart
HISTORY_POINTS = 5000
# Seconds between snapshots, at least: no client is sent them more often, so the training
# worker, which pays for each one, makes none more often either.
SNAPSHOT_INTERVAL = 0.1
# The walk-through: 1 forward pass, 2 cost and desired outputs, 3 one output neuron's levers,
# 4 nudges summed into the layer before, 5 back to the first layer, 6 one example beside a
# mini-batch, 7 apply one gradient step.
EXPLAIN_STEPS = 7


class QuantisedMatrix(TypedDict):
    shape: list[int]
    scale: float
    data: str


class LayerGradients(TypedDict):
    weight_norm: float | None
    bias_norm: float | None
    mean_abs: float | None


class ProbeFrame(TypedDict):
    index: int
    label: int
    pixels: str


class BatchesFrame(TypedDict):
    type: str
    run: str
    lane: int | None
    epoch: int
    first_batch: int
    costs: list[float | None]
    examples_seen: int
    gradients: list[LayerGradients]
    time: float
    seconds: float


class EvalFrame(TypedDict):
    type: str
    run: str
    lane: int | None
    epoch: int
    batch: int  # an index: the epoch's last mini-batch
    accuracy: float
    cost: float | None
    examples_seen: int


class SnapshotFrame(TypedDict):
    type: str
    run: str
    lane: int | None
    batch: int  # a count: the mini-batches trained
    layer_sizes: list[int]
    weights: list[QuantisedMatrix]
    biases: list[list[float | None]]
    probe: ProbeFrame
    activations: list[list[float | None]]
    nudges: list[list[float | None]] | None
    gradient_maps: QuantisedMatrix | None


class StatusFrame(TypedDict):
    type: str
    run: dict[str, Any]
    message: str | None
    viewers: int
    race: dict[str, Any] | None


class CompactModel(TypedDict):
    layer_sizes: list[int]
    activation: str
    loss: str
    weights: list[QuantisedMatrix]
    biases: list[list[float | None]]


class HistoryFrame(TypedDict):
    first_batch: int
    next_batch: int
    stride: int
    costs: list[float | None]
    gradient_norms: list[list[float | None]]
    evaluations: list[dict[str, Any]]


class HelloFrame(TypedDict):
    type: str
    run: dict[str, Any]
    model: CompactModel
    viewers: int
    history: HistoryFrame
    race: dict[str, Any] | None


def significant(value: float, digits: int = COST_DIGITS) -> float | None:
    """``value`` to ``digits`` significant digits; ``None`` (JSON null) if not finite."""
    if not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def significant_list(values: np.ndarray, digits: int = VALUE_DIGITS) -> list[float | None]:
    """Round every element to ``digits`` significant digits, vectorised, for a JSON list.

    Rounding by an exact power of ten (dividing when it is below one) gives the float nearest
    the short decimal, so ``json`` prints it short too.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(x)
    safe = np.where(finite, x, 0.0)
    magnitude = np.floor(np.log10(np.where(safe == 0, 1.0, np.abs(safe))))
    decimals = (digits - 1 - magnitude).astype(np.int64)
    scale = 10.0 ** np.abs(decimals)
    rounded = np.where(
        decimals >= 0, np.round(safe * scale) / scale, np.round(safe / scale) * scale
    )
    return with_nulls(rounded, finite)


def rounded_list(values: np.ndarray, decimals: int = ACTIVATION_DECIMALS) -> list[float | None]:
    """Round every element to ``decimals`` places; ``None`` where it is not finite (a network
    that has just diverged has NaN activations, and JSON has no NaN)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(x)
    return with_nulls(np.round(np.where(finite, x, 0.0), decimals), finite)


def with_nulls(values: np.ndarray, finite: np.ndarray) -> list[float | None]:
    """``values`` as a JSON-ready list, with ``None`` wherever ``finite`` is false."""
    result: list[float | None] = values.tolist()
    for i in np.flatnonzero(~finite):
        result[i] = None
    return result


def quantise(matrix: np.ndarray) -> QuantisedMatrix:
    """A matrix as int8 scaled by its largest magnitude: 1 byte per value, 2 digits of detail."""
    values = np.asarray(matrix, dtype=np.float32)
    finite = np.where(np.isfinite(values), values, 0.0)
    scale = float(np.abs(finite).max()) if finite.size else 0.0
    if scale > 0:
        codes = np.rint(finite * (127.0 / scale)).astype(np.int8)
    else:
        codes = np.zeros(values.shape, np.int8)
    return {
        "shape": list(values.shape),
        "scale": significant(scale, 7) or 0.0,
        "data": base64.b64encode(codes.tobytes()).decode("ascii"),
    }


def dequantise(matrix: QuantisedMatrix) -> np.ndarray:
    """The float32 matrix a quantised one stands for (what frames.js computes in the browser)."""
    codes = np.frombuffer(base64.b64decode(matrix["data"]), dtype=np.int8)
    return (codes.astype(np.float32) * (matrix["scale"] / 127.0)).reshape(matrix["shape"])


def encode_pixels(pixels: np.ndarray) -> str:
    """784 values in [0, 1] as base64 of uint8 (0-255)."""
    codes = np.rint(np.clip(np.asarray(pixels, np.float32).ravel(), 0, 1) * 255).astype(np.uint8)
    return base64.b64encode(codes.tobytes()).decode("ascii")


def encode(frame: Any) -> str:
    """A frame as compact JSON text; ``allow_nan=False`` because browsers reject ``NaN``."""
    return json.dumps(frame, separators=(",", ":"), allow_nan=False)


def layer_gradients(stats: LayerGradientStats) -> LayerGradients:
    return {
        "weight_norm": significant(stats.weight_norm, VALUE_DIGITS),
        "bias_norm": significant(stats.bias_norm, VALUE_DIGITS),
        "mean_abs": significant(stats.mean_abs, VALUE_DIGITS),
    }


def batches_frame(records: Sequence[BatchRecord]) -> BatchesFrame:
    """One frame for consecutive ``records`` of one run and one epoch."""
    last = records[-1]
    return {
        "type": "batches",
        "run": last.run,
        "lane": last.lane,
        "epoch": last.epoch,
        "first_batch": records[0].index,
        "costs": [significant(record.cost) for record in records],
        "examples_seen": last.examples_seen,
        "gradients": [layer_gradients(stats) for stats in last.gradients],
        "time": round(last.time, 4),
        "seconds": round(last.seconds, SECONDS_DIGITS),
    }


def eval_frame(
    run: str, last_batch: int, evaluation: Evaluation, lane: int | None = None
) -> EvalFrame:
    """The test score after the mini-batch with index ``last_batch``, an epoch's last."""
    return {
        "type": "eval",
        "run": run,
        "lane": lane,
        "epoch": evaluation.epoch,
        "batch": last_batch,
        "accuracy": round(evaluation.accuracy, 5),
        "cost": significant(evaluation.cost),
        "examples_seen": evaluation.examples_seen,
    }


def batch_frames(records: Sequence[BatchRecord]) -> list[BatchesFrame | EvalFrame]:
    """``batches`` frames for consecutive records, cut where the epoch changes, each epoch end
    followed by its ``eval`` frame: so a chart can place epoch marks and test scores exactly."""
    frames: list[BatchesFrame | EvalFrame] = []
    start = 0
    for i, record in enumerate(records):
        next_epoch_differs = i + 1 < len(records) and records[i + 1].epoch != record.epoch
        if record.evaluation is not None or next_epoch_differs or i + 1 == len(records):
            frames.append(batches_frame(records[start : i + 1]))
            if record.evaluation is not None:
                frames.append(eval_frame(record.run, record.index, record.evaluation, record.lane))
            start = i + 1
    return frames


def status_frame(
    run: dict[str, Any], message: str | None, viewers: int, race: dict[str, Any] | None = None
) -> StatusFrame:
    return {"type": "status", "run": run, "message": message, "viewers": viewers, "race": race}


def snapshot_frame(snapshot: Snapshot, probe: Probe) -> SnapshotFrame:
    """The trainer's snapshot, encoded for drawing."""
    network = snapshot.network
    nudges = gradient_maps = None
    if snapshot.activation_gradients is not None:
        # The nudge is the desired change: the negative of the mean dC/da.
        nudges = [significant_list(-gradient) for gradient in snapshot.activation_gradients]
    if snapshot.gradient_map is not None:
        gradient_maps = quantise(snapshot.gradient_map)
    return {
        "type": "snapshot",
        "run": snapshot.run,
        "lane": snapshot.lane,
        "batch": snapshot.batch,
        "layer_sizes": list(network.layer_sizes),
        "weights": [quantise(w) for w in network.weights],
        "biases": [significant_list(b) for b in network.biases],
        "probe": probe_frame(probe),
        "activations": [rounded_list(a) for a in snapshot.activations],
        "nudges": nudges,
        "gradient_maps": gradient_maps,
    }


def probe_frame(probe: Probe) -> ProbeFrame:
    return {"index": probe.index, "label": probe.label, "pixels": encode_pixels(probe.pixels)}


def compact_model(snapshot: SnapshotFrame, activation: str, loss: str) -> CompactModel:
    """The hello frame's model: the latest snapshot's weights, with what the network is."""
    return {
        "layer_sizes": snapshot["layer_sizes"],
        "activation": activation,
        "loss": loss,
        "weights": snapshot["weights"],
        "biases": snapshot["biases"],
    }


def hello_frame(
    run: dict[str, Any],
    snapshot: SnapshotFrame,
    history: HistoryFrame,
    viewers: int,
    race: dict[str, Any] | None = None,
) -> HelloFrame:
    """``race``: null, or GET /api/race whose lanes carry their ``history`` and ``model``."""
    return {
        "type": "hello",
        "run": run,
        "model": config_model(snapshot, run["config"]),
        "viewers": viewers,
        "history": history,
        "race": race,
    }


def config_model(snapshot: SnapshotFrame, config: dict[str, Any]) -> CompactModel:
    """The compact model of a run whose config (as GET /api/run gives it) is ``config``."""
    return compact_model(snapshot, config["activation"], config["loss"])


class ExampleFrame(TypedDict):
    index: int | None
    label: int
    pixels: str


class LessonFrame(TypedDict):
    lr: float
    cost_before: float | None
    cost_after: float | None
    output_before: list[float | None]
    output_after: list[float | None]


class ExplainFrame(TypedDict):
    type: str
    run: str
    batch: int  # a count: the mini-batches trained
    step: int | None
    example: ExampleFrame | None
    key: str | None
    neuron: int | None
    lesson: LessonFrame | None


def example_frame(index: int | None, label: int, pixels: np.ndarray) -> ExampleFrame:
    return {"index": index, "label": int(label), "pixels": encode_pixels(pixels)}


def lesson_frame(lesson: Lesson) -> LessonFrame:
    return {
        "lr": lesson.lr,
        "cost_before": significant(lesson.cost_before, 7),
        "cost_after": significant(lesson.cost_after, 7),
        "output_before": rounded_list(lesson.output_before),
        "output_after": rounded_list(lesson.output_after),
    }


def explain_frame(
    run: str,
    batches_trained: int,
    step: int | None,
    example: ExampleFrame | None,
    key: str | None = None,
    neuron: int | None = None,
    lesson: LessonFrame | None = None,
) -> ExplainFrame:
    return {
        "type": "explain",
        "run": run,
        "batch": batches_trained,
        "step": step,
        "example": example,
        "key": key,
        "neuron": neuron,
        "lesson": lesson,
    }


class ScoreFrame(TypedDict):
    count: int
    accuracy: float | None


class GalleryItemFrame(TypedDict, total=False):
    id: int
    label: int
    digit: int
    confidence: float
    held_out: bool
    author: str | None  # only while names are shown to everyone


class RoomEvaluationFrame(TypedDict):
    epoch: int
    batch: int  # an index: the epoch's last mini-batch
    count: int
    accuracy: float | None
    training: ScoreFrame
    held_out: ScoreFrame


class MnistTestFrame(TypedDict):
    epoch: int
    batch: int  # a count: the mini-batches the network had been trained on
    accuracy: float
    confusion: list[list[int]]


class GalleryFrame(TypedDict):
    type: str
    run: str
    batch: int  # a count
    version: int
    settings: dict[str, bool]
    capacity: int
    count: int
    accuracy: float | None
    confusion: list[list[int]]
    training: ScoreFrame
    held_out: ScoreFrame
    items: list[GalleryItemFrame]
    evaluations: list[RoomEvaluationFrame]
    test: MnistTestFrame | None


def score_frame(score: Score) -> ScoreFrame:
    accuracy = score.accuracy
    return {"count": score.count, "accuracy": None if accuracy is None else round(accuracy, 5)}


def gallery_items(scores: RoomScores, names: bool) -> list[GalleryItemFrame]:
    """Every drawing read in ``scores``, with its author's name only if ``names``."""
    confidence = np.round(scores.probabilities.max(axis=1, initial=0.0), 2).tolist()
    items: list[GalleryItemFrame] = []
    for i, drawing in enumerate(scores.drawings):
        item: GalleryItemFrame = {
            "id": drawing.id,
            "label": drawing.label,
            "digit": int(scores.digits[i]),
            "confidence": confidence[i],
            "held_out": bool(scores.held_out[i]),
        }
        if names:
            item["author"] = drawing.author
        items.append(item)
    return items


def room_evaluation_frame(epoch: int, last_batch: int, scores: RoomScores) -> RoomEvaluationFrame:
    """The room's score at the evaluation after mini-batch ``last_batch`` (an index)."""
    overall = score_frame(scores.score())
    return {
        "epoch": epoch,
        "batch": last_batch,
        "count": overall["count"],
        "accuracy": overall["accuracy"],
        "training": score_frame(scores.score(~scores.held_out)),
        "held_out": score_frame(scores.score(scores.held_out)),
    }


def mnist_test_frame(epoch: int, batches_trained: int, confusion: np.ndarray) -> MnistTestFrame:
    """The test set's confusion after ``batches_trained`` mini-batches (a count)."""
    total = int(confusion.sum())
    return {
        "epoch": epoch,
        "batch": batches_trained,
        "accuracy": round(int(np.trace(confusion)) / total, 5) if total else 0.0,
        "confusion": confusion.tolist(),
    }


def gallery_frame(
    run: str,
    batches_trained: int,
    version: int,
    settings: GallerySettings,
    capacity: int,
    scores: RoomScores,
    evaluations: list[RoomEvaluationFrame],
    test: MnistTestFrame | None,
) -> GalleryFrame:
    """The room's drawings in ``scores`` (the visible ones only) as every screen shows them."""
    overall = score_frame(scores.score())
    return {
        "type": "gallery",
        "run": run,
        "batch": batches_trained,
        "version": version,
        "settings": dataclasses.asdict(settings),
        "capacity": capacity,
        "count": overall["count"],
        "accuracy": overall["accuracy"],
        "confusion": scores.confusion.tolist(),
        "training": score_frame(scores.score(~scores.held_out)),
        "held_out": score_frame(scores.score(scores.held_out)),
        "items": gallery_items(scores, settings.names),
        "evaluations": evaluations,
        "test": test,
    }
