"""The app factory: wiring only. The run trains in the trainer process (``server.trainer``);
this process serves the pages and the API and fans the trainer's reports out to every browser.

    trainer process ──reports──► TrainerClient ──► relay ──► RunView (what routes read)
                                                        ├──► Broadcaster ──► every websocket
                                                        └──► Scoreboard (the room's gallery)
    routes ──typed commands──► TrainerClient ──► trainer process
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from engine.data.mnist import Dataset, load_dataset
from server.broadcast import Broadcaster
from server.config import MAX_BODY_BYTES, Settings
from server.errors import add_error_handlers
from server.frames import snapshot_frame
from server.gallery import Gallery
from server.history import History
from server.library import open_library
from server.limits import Door, Limiter
from server.openapi import document_errors
from server.resources import STATIC_DIR
from server.routes import classify, explain, health, model, pages, race, run, runs, ws
from server.routes import gallery as gallery_routes
from server.routes.docs import add_docs
from server.scoreboard import Scoreboard
from server.submissions import TokenBucket
from server.trainer.client import TrainerClient
from server.trainer.protocol import (
    RaceChanged,
    Report,
    RunChanged,
    Snapshot,
    StatusChanged,
    Trained,
)
from server.trainer.worker import TrainerSettings
from server.view import RunView

log = logging.getLogger(__name__)


def relay(
    report: Report,
    view: RunView,
    broadcaster: Broadcaster,
    scoreboard: Scoreboard,
    histories: list[History] | None = None,
) -> None:
    """Hand one trainer report to what routes read, to every browser and to the gallery.
    ``histories``: the cost charts so far (the run's, or every lane's), when a ``RunChanged`` or
    ``RaceChanged`` comes without their records (a web process that joins a trainer through
    Redis)."""
    view.take(report)
    match report:
        case Trained(records=records):
            broadcaster.publish_batches(records)
        case Snapshot():
            broadcaster.publish_snapshot(snapshot_frame(report, view.probe))
        case RunChanged(state=state, record=record):
            chart = histories[0] if histories else History.restored(state.id, record)
            broadcaster.publish_run(state.id, chart)
            broadcaster.publish_status()
        case RaceChanged(race=race, records=records):
            if race is not None:  # an ended race is followed by the run's RunChanged
                charts = histories or [
                    History.restored(lane.state.id, record)
                    for lane, record in zip(race.lanes, records)
                ]
                broadcaster.publish_race(race, charts)
            broadcaster.publish_status()
        case StatusChanged():
            broadcaster.publish_status()
    scoreboard.take(report)


def trainer_client(settings: Settings, relay_report: Callable[..., None]) -> TrainerClient:
    """The trainer process of our own, or with ``redis_url`` the one trainer that every web
    process follows through Redis (``server.trainer.streams``)."""
    trainer_settings = TrainerSettings(settings.data_dir, settings.state_dir)
    if settings.redis_url is None:
        return TrainerClient(trainer_settings, relay_report)
    from server.trainer.redis_client import RedisTrainerClient

    return RedisTrainerClient(trainer_settings, settings.redis_url, relay_report, relay_report)


def create_app(settings: Settings, dataset: Dataset | None = None) -> FastAPI:
    """The server for ``settings``; ``dataset`` is loaded at startup when not given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        data = dataset
        if data is None:
            data = await asyncio.to_thread(load_dataset, settings.data_dir)
        view = RunView(data)
        broadcaster = Broadcaster(view)
        broadcaster.bind(asyncio.get_running_loop())
        store = await asyncio.to_thread(open_library, settings.state_dir)
        gallery = await asyncio.to_thread(Gallery, store, settings.gallery_size)
        scoreboard = Scoreboard(gallery, view, broadcaster.publish_gallery)
        trainer = trainer_client(
            settings,
            lambda report, history=None: relay(report, view, broadcaster, scoreboard, history),
        )
        trainer.launch()
        app.state.shared = None
        if settings.redis_url is not None:
            from server.shared import SharedFrames

            app.state.shared = SharedFrames(settings.redis_url, broadcaster)
            broadcaster.share_explain = app.state.shared.publish_explain
            app.state.shared.start()
        app.state.view = view
        app.state.broadcaster = broadcaster
        app.state.trainer = trainer
        app.state.gallery = gallery
        app.state.scoreboard = scoreboard
        app.state.library = store  # reads, renames and deletes of runs; the trainer writes them
        try:
            await asyncio.to_thread(trainer.wait_ready)
            scoreboard.start(trainer)
            yield
        finally:
            await asyncio.to_thread(scoreboard.close)
            await asyncio.to_thread(trainer.close)
            if app.state.shared is not None:
                app.state.shared.close()
            if store is not None:
                await asyncio.to_thread(store.close)

    app = FastAPI(
        title="backprop-live",
        summary="Watch a NumPy network learn MNIST by backpropagation, live.",
        lifespan=lifespan,
        max_body_size=MAX_BODY_BYTES,
        docs_url=None,  # served by add_docs from the package's files, not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.submissions = TokenBucket()
    app.state.limiters = {
        kind: Limiter(kind, limit) for kind, limit in settings.rate_limits.items() if limit
    }
    app.state.door = Door(settings.max_viewers, settings.connect_limit)
    if settings.forwarded_allow_ips:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    add_error_handlers(app)
    routers = (
        health.router,
        run.router,
        race.router,
        runs.router,
        model.router,
        classify.router,
        explain.router,
        gallery_routes.router,
    )
    for router in routers:
        app.include_router(router)
    app.include_router(ws.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    add_docs(app)
    document_errors(app, routers)
    return app
