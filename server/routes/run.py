"""The run: read by anyone, changed only by the presenter."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from engine.network import ACTIVATIONS, LOSSES
from engine.optimizers import OPTIMIZERS
from engine.training import (
    LR_SCHEDULES,
    MAX_HIDDEN_LAYERS,
    MAX_SHIFT,
    MAX_UNITS,
    ConfigError,
    TrainConfig,
)
from server.deps import Presenter, SessionDep
from server.session import Session, SessionConflict

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


def command(session: Session, name: str, *args: Any) -> dict[str, Any]:
    """Run a session command; a conflict with the run's status is a 409, a bad value a 422."""
    try:
        return getattr(session, name)(*args)
    except SessionConflict as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    except ConfigError as error:
        raise HTTPException(422, str(error)) from error
    except TimeoutError as error:
        raise HTTPException(503, "the training worker is busy; try again") from error


@router.get("")
def read_run(session: SessionDep) -> dict[str, Any]:
    return session.run_view()


@router.post("")
def new_run(config: RunConfig, session: SessionDep, _: Presenter) -> dict[str, Any]:
    """Replace the run with a fresh network for ``config``, not yet started."""
    try:
        train_config = TrainConfig(**config.model_dump())
    except ConfigError as error:
        raise HTTPException(422, str(error)) from error
    return command(session, "new_run", train_config)


@router.patch("")
def change_run(changes: RunChanges, session: SessionDep, _: Presenter) -> dict[str, Any]:
    """Change the learning rate or the speed without resetting the run."""
    return command(session, "update", changes.model_dump(include=changes.model_fields_set))


@router.post("/start")
def start(session: SessionDep, _: Presenter) -> dict[str, Any]:
    return command(session, "start")


@router.post("/pause")
def pause(session: SessionDep, _: Presenter) -> dict[str, Any]:
    return command(session, "pause")


@router.post("/step")
def step(session: SessionDep, _: Presenter) -> dict[str, Any]:
    """Train exactly one mini-batch, then stay paused (a running run is paused first)."""
    return command(session, "step")


@router.post("/reset")
def reset(session: SessionDep, _: Presenter) -> dict[str, Any]:
    """A fresh network with the same config (the current learning rate included)."""
    return command(session, "reset")
