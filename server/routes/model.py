"""The network itself: its weights as JSON, or the whole run as a checkpoint file."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from engine.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from server.bodies import model_dict
from server.deps import DownloadBudget, Presenter, TrainerDep, ViewDep

router = APIRouter(tags=["model"])

MAX_CHECKPOINT_BYTES = 32 * 1024 * 1024  # the largest network with Adam's state is ~15 MB


@router.get("/api/model")
def read_model(view: ViewDep, _: DownloadBudget) -> dict[str, Any]:
    """The architecture and every current weight and bias (W[l][j][k]: neuron k → j)."""
    return model_dict(view.network)


@router.get(
    "/api/checkpoint",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_checkpoint(trainer: TrainerDep, view: ViewDep, _: DownloadBudget) -> Response:
    """The current run as an ``.npz`` checkpoint, which POST /api/checkpoint loads back."""
    body = trainer.checkpoint_bytes()
    run_id = view.state.id
    return Response(
        body,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="backprop-live-{run_id}.npz"'},
    )


@router.post(
    "/api/checkpoint",
    max_body_size=MAX_CHECKPOINT_BYTES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_checkpoint(
    request: Request, trainer: TrainerDep, view: ViewDep, _: Presenter
) -> dict[str, Any]:
    """Replace the run with a saved one (paused where it was saved)."""
    body = await request.body()
    if not body:
        raise HTTPException(422, "body: send the .npz file a GET /api/checkpoint gave you")
    checkpoint = await run_in_threadpool(uploaded_checkpoint, body)
    await run_in_threadpool(trainer.load, checkpoint)
    return view.run_dict()


def uploaded_checkpoint(body: bytes) -> Checkpoint:
    """The checkpoint in ``body``. Its config is held to the rules of ``POST /api/run`` by the
    loader itself: both are :class:`TrainConfig`'s limits, types included (a batch size of
    100.5 or a seed of 1.5 is refused)."""
    try:
        return load_checkpoint(body)
    except CheckpointError as error:
        raise HTTPException(422, f"body: {error}") from error
    except Exception as error:  # hostile archives fail in ways the loader does not name
        raise HTTPException(422, f"body: not a usable checkpoint ({error})") from error
