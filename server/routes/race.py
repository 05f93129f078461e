"""The race: read by anyone, begun and ended only by the presenter. Start, pause, step and speed
are the run's controls (server.routes.run), which drive the race while one is on."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from engine.training import TrainConfig
from server.deps import Presenter, TrainerDep, ViewDep
from server.openapi import ERROR
from server.presets import PRESETS
from server.schemas import RaceBody
from server.trainer.protocol import LaneConfig, NotFound
from server.view import RunView, race_dict

router = APIRouter(prefix="/api/race", tags=["race"])
NO_RACE: dict[int | str, dict[str, Any]] = {404: {"description": "No race is on", "content": ERROR}}


def current_race(view: RunView) -> dict[str, Any]:
    if view.race is None:
        raise NotFound("no race is on")
    return race_dict(view.race)


@router.get("", responses=NO_RACE)
def read_race(view: ViewDep) -> dict[str, Any]:
    return current_race(view)


@router.post("")
def new_race(body: RaceBody, trainer: TrainerDep, view: ViewDep, _: Presenter) -> dict[str, Any]:
    """Replace the live run (or race) with a race of ``lanes``, paused: every lane from one
    seed, so lanes of one architecture start from the same weights and see the same examples."""
    lanes = [LaneConfig(lane.label, TrainConfig(**lane.config.model_dump())) for lane in body.lanes]
    trainer.new_race(lanes, body.pace)
    return current_race(view)


@router.delete("", responses=NO_RACE)
def end_race(trainer: TrainerDep, view: ViewDep, _: Presenter) -> dict[str, Any]:
    """End the race (its lanes stay in the run library); the run live before it comes back,
    paused."""
    trainer.end_race()
    return view.run_dict()


@router.get("/presets")
def presets() -> list[dict[str, Any]]:
    """The races the page offers, in order: each a question and the race that answers it."""
    return PRESETS
