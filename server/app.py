"""The app factory: wiring only. Routes live in ``server.routes``, the run in ``server.session``."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from engine.data import Dataset, load_dataset
from server.broadcast import Broadcaster
from server.config import Settings
from server.routes import classify, health, model, pages, run, ws
from server.session import Session
from server.state import StateStore

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
MAX_BODY_BYTES = 2 * 1024 * 1024


def create_app(settings: Settings, dataset: Dataset | None = None) -> FastAPI:
    """The server for ``settings``; ``dataset`` is loaded at startup when not given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        data = dataset or await asyncio.to_thread(load_dataset, settings.data_dir)
        broadcaster = Broadcaster()
        broadcaster.bind(asyncio.get_running_loop())
        session = Session(data, broadcaster, StateStore(settings.state_dir))
        broadcaster.run_view = session.run_view
        app.state.broadcaster = broadcaster
        app.state.session = session
        session.start_worker()
        try:
            yield
        finally:
            await asyncio.to_thread(session.stop_worker)

    app = FastAPI(
        title="backprop-live",
        summary="Watch a NumPy network learn MNIST by backpropagation, live.",
        lifespan=lifespan,
        max_body_size=MAX_BODY_BYTES,
    )
    app.state.settings = settings
    app.add_exception_handler(RequestValidationError, validation_error)
    for router in (health.router, run.router, model.router, classify.router, ws.router):
        app.include_router(router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def float_text(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


async def validation_error(request: Request, error: Exception) -> JSONResponse:
    """422 with FastAPI's usual ``detail`` list and one sentence that names the field."""
    assert isinstance(error, RequestValidationError)
    # Without the offending input: it may be megabytes, or NaN, which JSON cannot carry.
    errors = [
        {key: value for key, value in item.items() if key != "input"} for item in error.errors()
    ]
    errors = jsonable_encoder(errors, custom_encoder={Exception: str, float: float_text})
    first = errors[0] if errors else {"loc": ["body"], "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", [])[1:]) or "body"
    return JSONResponse(
        {"detail": errors, "message": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422
    )
