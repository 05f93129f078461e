"""Explain one example's backpropagation, step by step, and let the presenter teach with it.

``POST /api/explain`` (anyone) answers the whole trace of one example; ``POST /api/explain/step``
and ``/api/explain/end`` (presenter) tell every viewer where the walk-through is, and
``POST /api/teach`` (presenter) takes one gradient step on the example. The maths is
:mod:`engine.explain`, the wire format :mod:`server.frames`; this module only picks the
example and holds the weights still while it is read or changed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from engine.data.mnist import PIXELS
from engine.explain import COMPARISON_BATCH, average_gradient, explain, frozen_copy, teach
from engine.network import Network
from engine.training import Trainer
from server.bodies import explanation
from server.deps import BroadcasterDep, Presenter, SessionDep
from server.frames import (
    EXPLAIN_STEPS,
    ExampleFrame,
    encode,
    example_frame,
    explain_frame,
    lesson_frame,
)
from server.routes.run import command
from server.session import Session

router = APIRouter(tags=["explain"])

MAX_TEACH_LR = 10.0
ANSWERS_KEPT = 8
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


def resolve(example: ExampleBody, session: Session) -> tuple[np.ndarray, int, ExampleFrame]:
    """The example's 784 pixels, its label, and how frames name it."""
    dataset = session.dataset
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
    """The latest few explanations, by the weights they were computed with and the example.

    When the presenter picks a digit, every viewer in the room asks for its trace at the same
    moment: the first request computes it, the others wait for it and share it.
    """

    def __init__(self, size: int = ANSWERS_KEPT) -> None:
        self.size = size
        self.texts: OrderedDict[tuple[Any, ...], str] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[Any, ...], compute: Callable[[], str]) -> str:
        with self.lock:
            if key not in self.texts:
                self.texts[key] = compute()
                while len(self.texts) > self.size:
                    self.texts.popitem(last=False)
            self.texts.move_to_end(key)
            return self.texts[key]


answers = Answers()


def fingerprint(network: Network) -> str:
    """A digest of every weight and bias: equal digests, the same network."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (*network.weights, *network.biases):
        digest.update(array.tobytes())
    return digest.hexdigest()


@router.post("/api/explain")
def explain_example(example: ExampleBody, session: SessionDep) -> Response:
    """The backpropagation of one example with the current weights: every layer's z, a,
    dC/da, dC/dz, dC/db, dC/dW (quantised), the largest terms of each neuron's nudge, the
    cost, and the mean gradient of a fixed mini-batch of 100 training digits beside it."""
    pixels, label, named = resolve(example, session)

    def copy(trainer: Trainer) -> tuple[Network, str, int]:
        return frozen_copy(trainer.network), session.run_id, session.counters.batch

    network, run, batch = session.read(copy)  # the lock is held only for the copy
    dataset = session.dataset

    def compute() -> str:
        trace = explain(network, pixels, label)
        images = dataset.train_images[:COMPARISON_BATCH]
        average = average_gradient(network, images, dataset.train_labels[:COMPARISON_BATCH])
        return encode({"run": run, "batch": batch, **explanation(trace, network, average, named)})

    key = (run, batch, fingerprint(network), named["index"], named["label"], named["pixels"])
    return Response(answers.get(key, compute), media_type="application/json")


@router.post("/api/explain/step")
def explain_step(
    step: StepBody, session: SessionDep, broadcaster: BroadcasterDep, _: Presenter
) -> dict[str, Any]:
    """Show every viewer step ``step`` of the walk-through of this example."""
    _, label, named = resolve(step, session)
    neuron = step.neuron if step.neuron is not None else label
    frame = explain_frame(session.run_id, session.counters.batch, step.step, named, neuron)
    broadcaster.publish_explain(frame)
    return dict(frame)


@router.post("/api/explain/end")
def explain_end(session: SessionDep, broadcaster: BroadcasterDep, _: Presenter) -> dict[str, Any]:
    """Leave the walk-through on every screen."""
    frame = explain_frame(session.run_id, session.counters.batch, None, None)
    broadcaster.publish_explain(frame)
    return dict(frame)


@router.post("/api/teach")
def teach_example(
    lesson: TeachBody, session: SessionDep, broadcaster: BroadcasterDep, _: Presenter
) -> dict[str, Any]:
    """One plain gradient step of size ``lr`` on this example, applied to the live network
    (between two mini-batches, running or paused) and shown to every viewer: a fresh
    snapshot, and the walk-through's last step with the cost before and after."""
    pixels, label, named = resolve(lesson, session)

    def step_on_it(trainer: Trainer) -> Any:
        return teach(trainer.network, pixels, label, lesson.lr)

    result = lesson_frame(command(session, "edit", step_on_it))
    frame = explain_frame(
        session.run_id, session.counters.batch, EXPLAIN_STEPS, named, label, result
    )
    broadcaster.publish_explain(frame)
    return {**result, "run": session.run_view()}
