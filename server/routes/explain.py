"""Explain one example's backpropagation, step by step, and let the presenter teach with it.

``POST /api/explain`` (anyone) answers the whole trace of one example, named by a ``key`` with
which ``GET /api/explain/{key}`` answers it again; ``POST /api/explain/step`` and
``/api/explain/end`` (presenter) tell every viewer where the walk-through is and which trace to
fetch, and ``POST /api/teach`` (presenter) takes one gradient step on the example. The maths is
:mod:`engine.explain`, the wire format :mod:`server.frames`; this module only picks the
example and holds the weights still while it is read or changed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from engine.data.mnist import PIXELS, Dataset
from engine.explain import COMPARISON_BATCH, average_gradient, explain
from engine.network import Network
from server.bodies import explanation
from server.deps import (
    BroadcasterDep,
    ExplainBudget,
    Presenter,
    SharedDep,
    TraceBudget,
    TrainerDep,
    ViewDep,
)
from server.frames import (
    EXPLAIN_STEPS,
    ExampleFrame,
    encode,
    example_frame,
    explain_frame,
    lesson_frame,
)
from server.shared import SharedFrames
from server.view import RunView

router = APIRouter(tags=["explain"])

MAX_TEACH_LR = 10.0
ANSWERS_KEPT = 8
KEY_DIGITS = 16  # hex digits of a trace's key: 64 bits, unique among the few traces kept
Pixel = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class ExampleBody(BaseModel):
    """One example: ``index`` of a test digit, or ``pixels`` (a drawing) with its ``label``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    index: int | None = Field(default=None, ge=0, description="a test digit of the dataset")
    pixels: list[Pixel] | None = Field(
        default=None,
        min_length=PIXELS,
        max_length=PIXELS,
        validate_default=True,
        description="784 values in 0..1, row by row (0 = no ink)",
    )
    label: int | None = Field(
        default=None,
        ge=0,
        le=9,
        validate_default=True,
        description="the digit the pixels show (a test digit brings its own)",
    )

    @field_validator("pixels")
    @classmethod
    def index_or_pixels(cls, pixels: list[float] | None, info: ValidationInfo) -> Any:
        if pixels is None and info.data.get("index") is None and "index" in info.data:
            raise ValueError("send the index of a test digit, or 784 pixels with a label")
        if pixels is not None and info.data.get("index") is not None:
            raise ValueError("send either an index or pixels, not both")
        return pixels

    @field_validator("label")
    @classmethod
    def label_with_pixels(cls, label: int | None, info: ValidationInfo) -> int | None:
        if label is None and info.data.get("pixels") is not None:
            raise ValueError("required with pixels: the digit (0-9) the drawing shows")
        return label


class TeachBody(ExampleBody):
    """The example and the learning rate of one gradient step on it."""

    lr: float = Field(gt=0, le=MAX_TEACH_LR, allow_inf_nan=False, description="step size η")


class StepBody(ExampleBody):
    """Where the presenter is in the walk-through of the example."""

    step: int = Field(ge=1, le=EXPLAIN_STEPS, description=f"1..{EXPLAIN_STEPS}")
    neuron: int | None = Field(default=None, ge=0, le=9, description="output neuron of step 3")


def resolve(example: ExampleBody, dataset: Dataset) -> tuple[np.ndarray, int, ExampleFrame]:
    """The example's 784 pixels, its label, and how frames name it."""
    if example.pixels is not None and example.label is not None:
        pixels = np.asarray(example.pixels, np.float32)
        return pixels, example.label, example_frame(None, example.label, pixels)
    index = example.index if example.index is not None else -1
    if not 0 <= index < dataset.test_size:
        raise HTTPException(
            422, f"index: must be a test digit from 0 to {dataset.test_size - 1}, got {index}"
        )
    pixels, label = dataset.test_images[index], int(dataset.test_labels[index])
    return pixels, label, example_frame(index, label, pixels)


class Answers:
    """The latest few explanations, by their key (see :func:`trace_key`).

    When the presenter picks a digit, every viewer in the room asks for its trace at the same
    moment: the first request computes it, the others wait for it and share it.
    """

    def __init__(self, size: int = ANSWERS_KEPT) -> None:
        self.size = size
        self.texts: OrderedDict[str, str] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str, compute: Callable[[], str]) -> str:
        with self.lock:
            if key not in self.texts:
                self.texts[key] = compute()
                while len(self.texts) > self.size:
                    self.texts.popitem(last=False)
            self.texts.move_to_end(key)
            return self.texts[key]

    def find(self, key: str) -> str | None:
        """The trace named ``key``, if it is still kept."""
        with self.lock:
            if key in self.texts:
                self.texts.move_to_end(key)
            return self.texts.get(key)


answers = Answers()


def fingerprint(network: Network) -> str:
    """A digest of every weight and bias: equal digests, the same network."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (*network.weights, *network.biases):
        digest.update(array.tobytes())
    return digest.hexdigest()


def trace_key(run: str, batch: int, weights: str, example: ExampleFrame) -> str:
    """A trace's short name: a digest of all that decides it, the run, the batch, the weights'
    fingerprint and the example."""
    identity = [run, batch, weights, example["index"], example["label"], example["pixels"]]
    digest = hashlib.blake2b(json.dumps(identity).encode(), digest_size=KEY_DIGITS // 2)
    return digest.hexdigest()


def remember(pixels: np.ndarray, label: int, named: ExampleFrame, view: RunView) -> tuple[str, str]:
    """The key and the JSON text of this example's trace with the latest weights, computed
    once for everyone who asks and kept among the latest ``ANSWERS_KEPT``."""
    snapshot, dataset = view.snapshot, view.dataset
    network, run, batch = snapshot.network, snapshot.run, snapshot.batch
    key = trace_key(run, batch, fingerprint(network), named)

    def compute() -> str:
        trace = explain(network, pixels, label)
        images = dataset.train_images[:COMPARISON_BATCH]
        average = average_gradient(network, images, dataset.train_labels[:COMPARISON_BATCH])
        body = explanation(trace, network, average, named)
        return encode({"key": key, "run": run, "batch": batch, **body})

    return key, answers.get(key, compute)


def share(trace: tuple[str, str], shared: SharedFrames | None) -> str:
    """The key of ``trace`` (key, text), kept where every web process finds it, if several
    show the walk-through (``serve --redis``)."""
    key, text = trace
    if shared is not None:
        shared.keep_trace(key, text)
    return key


@router.post("/api/explain")
def explain_example(example: ExampleBody, view: ViewDep, _: ExplainBudget) -> Response:
    """The backpropagation of one example with the current weights: every layer's z, a,
    nudge −dC/da, dC/dz, dC/db, dC/dW (quantised), the largest terms of each neuron's nudge, the
    cost, and the mean gradient of a fixed mini-batch of 100 training digits beside it. Its
    ``key`` fetches the same answer from GET /api/explain/{key}."""
    text = remember(*resolve(example, view.dataset), view)[1]
    return Response(text, media_type="application/json")


TraceKey = Annotated[
    str,
    Path(
        pattern=f"^[0-9a-f]{{{KEY_DIGITS}}}$",
        description="the key of a trace: from POST /api/explain or an explain frame",
    ),
]


@router.get("/api/explain/{key}")
def explained(key: TraceKey, shared: SharedDep, _: TraceBudget) -> Response:
    """The trace named ``key``, as POST /api/explain answered it: how viewers fetch the trace
    the presenter is showing. 404 once the server no longer keeps it (it keeps the latest few)."""
    text = answers.find(key)
    if text is None and shared is not None:  # computed by the presenter's web process
        text = shared.find_trace(key)
    if text is None:
        raise HTTPException(
            404,
            f"key: no trace {key} here; the server keeps only the latest {ANSWERS_KEPT}, "
            "and POST /api/explain with the example computes it again",
        )
    return Response(text, media_type="application/json")


@router.post("/api/explain/step")
def explain_step(
    step: StepBody, view: ViewDep, broadcaster: BroadcasterDep, shared: SharedDep, _: Presenter
) -> dict[str, Any]:
    """Show every viewer step ``step`` of the walk-through of this example, and which trace
    of it to fetch."""
    pixels, label, named = resolve(step, view.dataset)
    key = share(remember(pixels, label, named, view), shared)
    neuron = step.neuron if step.neuron is not None else label
    snapshot = view.snapshot
    frame = explain_frame(snapshot.run, snapshot.batch, step.step, named, key, neuron)
    broadcaster.publish_explain(frame)
    return dict(frame)


@router.post("/api/explain/end")
def explain_end(view: ViewDep, broadcaster: BroadcasterDep, _: Presenter) -> dict[str, Any]:
    """Leave the walk-through on every screen."""
    frame = explain_frame(view.snapshot.run, view.snapshot.batch, None, None, None)
    broadcaster.publish_explain(frame)
    return dict(frame)


@router.post("/api/teach")
def teach_example(
    lesson: TeachBody,
    trainer: TrainerDep,
    view: ViewDep,
    broadcaster: BroadcasterDep,
    shared: SharedDep,
    _: Presenter,
) -> dict[str, Any]:
    """One plain gradient step of size ``lr`` on this example, applied to the live network
    (between two mini-batches, running or paused) and shown to every viewer: a fresh
    snapshot, and the walk-through's last step with the cost before and after."""
    pixels, label, named = resolve(lesson, view.dataset)
    result = lesson_frame(trainer.teach(pixels, label, lesson.lr))
    key = share(remember(pixels, label, named, view), shared)  # with the taught weights
    snapshot = view.snapshot  # the taught network's: it was reported before the answer
    frame = explain_frame(snapshot.run, snapshot.batch, EXPLAIN_STEPS, named, key, label, result)
    broadcaster.publish_explain(frame)
    return {**result, "run": view.run_dict()}
