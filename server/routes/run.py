"""The run: read by anyone, changed only by the presenter."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from engine.network import ACTIVATIONS, LOSSES
from engine.optimizers import OPTIMIZERS
from engine.training import (
    LR_SCHEDULES,
    MAX_HIDDEN_LAYERS,
    MAX_SHIFT,
    MAX_UNITS,
    TrainConfig,
)
from server.deps import Presenter, TrainerDep, ViewDep

router = APIRouter(prefix="/api/run", tags=["run"])

DEFAULTS = TrainConfig()
MAX_SPEED = 10_000.0
# One mini-batch every ten seconds. Slower paces are indistinguishable from paused, and a
# speed near zero would ask the worker to sleep for longer than the clock can count.
MIN_SPEED = 0.1


class RunConfig(BaseModel):
    """A run's configuration: the same fields and bounds as ``backprop-live train``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    hidden: list[Annotated[int, Field(ge=1, le=MAX_UNITS)]] = Field(
        default=list(DEFAULTS.hidden), min_length=1, max_length=MAX_HIDDEN_LAYERS
    )
    activation: Literal[ACTIVATIONS] = DEFAULTS.activation  # type: ignore[valid-type]
    loss: Literal[LOSSES] = DEFAULTS.loss  # type: ignore[valid-type]
    optimizer: Literal[OPTIMIZERS] = DEFAULTS.optimizer  # type: ignore[valid-type]
    lr: float = Field(default=DEFAULTS.lr, gt=0, le=100, allow_inf_nan=False)
    batch_size: int = Field(default=DEFAULTS.batch_size, ge=1, le=10_000)
    epochs: int = Field(default=DEFAULTS.epochs, ge=1, le=1000)
    seed: int = Field(default=DEFAULTS.seed, ge=0, lt=2**32)
    weight_decay: float = Field(default=DEFAULTS.weight_decay, ge=0, le=1, allow_inf_nan=False)
    lr_schedule: Literal[LR_SCHEDULES] = DEFAULTS.lr_schedule  # type: ignore[valid-type]
    augment_shift: int = Field(default=DEFAULTS.augment_shift, ge=0, le=MAX_SHIFT)


class RunChanges(BaseModel):
    """Live changes: ``lr``, and ``speed`` in mini-batches per second (null: full speed)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # Optional but never null (a run always has a learning rate); the default is not validated.
    lr: float = Field(default=None, gt=0, le=100, allow_inf_nan=False)
    speed: float | None = Field(default=None, ge=MIN_SPEED, le=MAX_SPEED, allow_inf_nan=False)


@router.get("")
def read_run(view: ViewDep) -> dict[str, Any]:
    return view.run_dict()


@router.post("")
def new_run(config: RunConfig, trainer: TrainerDep, view: ViewDep, _: Presenter) -> dict[str, Any]:
    """Replace the run with a fresh network for ``config``, not yet started."""
    trainer.new_run(TrainConfig(**config.model_dump()))
    return view.run_dict()


@router.patch("")
def change_run(
    changes: RunChanges, trainer: TrainerDep, view: ViewDep, _: Presenter
) -> dict[str, Any]:
    """Change the learning rate or the speed without resetting the run."""
    if "lr" in changes.model_fields_set:
        trainer.set_learning_rate(changes.lr)
    if "speed" in changes.model_fields_set:
        trainer.set_speed(changes.speed)
    return view.run_dict()


@router.post("/start")
def start(trainer: TrainerDep, view: ViewDep, _: Presenter) -> dict[str, Any]:
    trainer.start()
    return view.run_dict()


@router.post("/pause")
def pause(trainer: TrainerDep, view: ViewDep, _: Presenter) -> dict[str, Any]:
    trainer.pause()
    return view.run_dict()


@router.post("/step")
def step(trainer: TrainerDep, view: ViewDep, _: Presenter) -> dict[str, Any]:
    """Train exactly one mini-batch, then stay paused (a running run is paused first)."""
    trainer.step()
    return view.run_dict()


@router.post("/reset")
def reset(trainer: TrainerDep, view: ViewDep, _: Presenter) -> dict[str, Any]:
    """A fresh network with the same config (the current learning rate included)."""
    trainer.reset()
    return view.run_dict()
