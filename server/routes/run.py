"""The run: read by anyone, changed only by the presenter."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from engine.training import TrainConfig
from server.deps import Presenter, TrainerDep, ViewDep
from server.schemas import RunChanges, RunConfig

router = APIRouter(prefix="/api/run", tags=["run"])


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
