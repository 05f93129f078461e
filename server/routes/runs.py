"""The run library: every run this server or `train --record` trained, read by anyone;
renamed, deleted and resumed by the presenter. What the answers hold is :mod:`server.library`'s
business; a resume is the trainer's (:meth:`TrainerClient.resume`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.training import LIMITS
from server.bodies import epoch_model
from server.deps import LibraryDep, Presenter, TrainerDep, ViewDep
from server.library import (
    DEFAULT_POINTS,
    MAX_POINTS,
    epoch_network,
    find_run,
    run_csv,
    run_detail,
    run_summary,
    runs_csv,
)
from server.openapi import ERROR
from server.store import Store, StoreError
from server.trainer.protocol import Conflict

router = APIRouter(
    prefix="/api/runs",
    tags=["runs"],
    responses={503: {"description": "The run library cannot be used", "content": ERROR}},
)

RunId = Annotated[str, Path(description="a run's id, as GET /api/runs lists it")]
# A run has at most as many epochs as a config allows: a larger number names none.
MOST_EPOCHS = LIMITS["epochs"].high
Epoch = Annotated[
    int, Path(ge=0, le=MOST_EPOCHS, description="epochs finished; 0 is the initial weights")
]
CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}
MAX_NAME_LENGTH = 200


class RunName(BaseModel):
    """PATCH /api/runs/{id}: the run's new name."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)

    @field_validator("name")
    @classmethod
    def one_line(cls, name: str) -> str:
        """Runs of spaces, tabs and line breaks become one space: a name is one line."""
        words = name.split()
        if not words:
            raise ValueError("a name needs a character other than spaces")
        return " ".join(words)


class ResumeAt(BaseModel):
    """POST /api/runs/{id}/resume: the epoch to resume at; none: the last one stored."""

    model_config = ConfigDict(extra="forbid", strict=True)

    epoch: int | None = Field(
        default=None, ge=0, le=MOST_EPOCHS, description="epochs finished (0: the start)"
    )


def committed(library: Store, what: str) -> None:
    """Wait until the library has written what this request asked (its writes are queued)."""
    if not library.flush():
        raise StoreError(f"could not {what} in the run library (the server's log says why)")


def csv_answer(text: str, filename: str) -> Response:
    disposition = f'attachment; filename="{filename}"'
    return Response(text, media_type="text/csv", headers={"Content-Disposition": disposition})


@router.get("")
def list_runs(library: LibraryDep, view: ViewDep, race: str | None = None) -> dict[str, Any]:
    """Every run, newest first, or with ``race`` that race's lanes in lane order; ``live``
    marks the runs the server trains now."""
    return {"runs": [run_summary(row, view.live_ids) for row in library.runs(race)]}


@router.get("/export.csv", response_class=Response, responses=CSV)
def export_runs(library: LibraryDep, view: ViewDep) -> Response:
    """One line per run: its summary and its config."""
    return csv_answer(runs_csv(library.runs(), view.live_ids), "backprop-live-runs.csv")


@router.get("/{run_id}")
def read_run(
    run_id: RunId,
    library: LibraryDep,
    view: ViewDep,
    points: Annotated[int, Query(ge=1, le=MAX_POINTS)] = DEFAULT_POINTS,
) -> dict[str, Any]:
    """The run's summary, its evaluations (``evals``), its cost curve averaged down to at most
    ``points`` points (``costs``) and the epochs whose weights are stored (``epochs``)."""
    return run_detail(library, find_run(library, run_id), view.live_ids, points)


@router.patch("/{run_id}")
def rename_run(
    run_id: RunId, body: RunName, library: LibraryDep, view: ViewDep, _: Presenter
) -> dict[str, Any]:
    find_run(library, run_id)
    library.rename_run(run_id, body.name)
    committed(library, f"rename run {run_id}")
    return run_summary(find_run(library, run_id), view.live_ids)


@router.delete("/{run_id}")
def delete_run(run_id: RunId, library: LibraryDep, view: ViewDep, _: Presenter) -> dict[str, str]:
    """The run and everything stored with it; the live run cannot be deleted (409)."""
    if run_id in view.live_ids:
        raise Conflict(
            f"run {run_id} is the live run (or a lane of the race): start a new run or resume "
            "another before deleting it"
        )
    find_run(library, run_id)
    library.delete_run(run_id)
    committed(library, f"delete run {run_id}")
    return {"deleted": run_id}


@router.get("/{run_id}/epochs/{epoch}/model")
def read_epoch_model(
    run_id: RunId, epoch: Epoch, library: LibraryDep, view: ViewDep
) -> dict[str, Any]:
    """The network at the end of epoch ``epoch``, as GET /api/model answers, with the probe
    digit and its activations in that network."""
    return epoch_model(epoch_network(library, run_id, epoch), view.probe, run_id, epoch)


@router.post("/{run_id}/resume")
def resume_run(
    run_id: RunId, trainer: TrainerDep, view: ViewDep, _: Presenter, body: ResumeAt | None = None
) -> dict[str, Any]:
    """The live run becomes this run at the end of ``epoch``, paused; every page follows.
    What it stored after that point is forgotten."""
    trainer.resume(run_id, body.epoch if body else None)
    return view.run_dict()


@router.get("/{run_id}/export.csv", response_class=Response, responses=CSV)
def export_run(run_id: RunId, library: LibraryDep) -> Response:
    """One line per mini-batch, then one per evaluation (the ``kind`` column says which)."""
    return csv_answer(run_csv(library, run_id), f"backprop-live-run-{run_id}.csv")
