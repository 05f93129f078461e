"""The run: read by anyone, changed only by the presenter."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from engine.training import ConfigError, TrainConfig
from server.deps import Presenter, SessionDep
from server.schemas import RunChanges, RunConfig
from server.session import Session, SessionConflict

router = APIRouter(prefix="/api/run", tags=["run"])


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
