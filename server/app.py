"""The app factory: wiring only. Routes live in ``server.routes``, the run in ``server.session``."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

from engine.data.mnist import Dataset, load_dataset
from server.broadcast import Broadcaster
from server.config import Settings
from server.openapi import document_errors
from server.resources import STATIC_DIR, SWAGGER_UI_DIR
from server.routes import classify, explain, health, model, pages, run, ws
from server.session import Session
from server.state import StateStore

MAX_BODY_BYTES = 2 * 1024 * 1024
# What Starlette and FastAPI answer, without naming a field, when a body is too big or unparsable.
TOO_LARGE_DETAIL = "Content Too Large"
UNPARSABLE_DETAIL = "There was an error parsing the body"


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
        docs_url=None,  # served by add_docs from the package's files, not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for router in (health.router, run.router, model.router, classify.router, ws.router):
        app.include_router(router)
    app.include_router(explain.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    add_docs(app)
    document_errors(app)
    return app


def add_docs(app: FastAPI) -> None:
    """FastAPI's Swagger UI at /docs, with its script, style and icon served from here rather
    than a CDN, so that it works on a classroom network with no internet."""
    assets = "/docs/assets"
    oauth2_redirect_url = "/docs/oauth2-redirect"
    openapi_url = app.openapi_url
    assert openapi_url, "/docs shows the OpenAPI schema"
    app.mount(assets, StaticFiles(directory=SWAGGER_UI_DIR), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            oauth2_redirect_url=oauth2_redirect_url,
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()


def float_text(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


async def validation_error(request: Request, error: Exception) -> JSONResponse:
    """422 with FastAPI's usual ``detail`` list and one sentence that names the field; 415 for a
    body sent as something other than JSON, which FastAPI hands on unparsed."""
    assert isinstance(error, RequestValidationError)
    kind = declared_type(request)
    if not is_json(kind) and any(
        tuple(item["loc"]) == ("body",) and item["type"] != "missing" for item in error.errors()
    ):
        refusal = f"content type {kind or 'missing'!r} is not supported: send application/json"
        return JSONResponse({"detail": refusal}, status_code=415)
    # Without the offending input: it may be megabytes, or NaN, which JSON cannot carry.
    errors = [
        {key: value for key, value in item.items() if key != "input"} for item in error.errors()
    ]
    errors = jsonable_encoder(errors, custom_encoder={Exception: str, float: float_text})
    first = errors[0] if errors else {"loc": ["body"], "msg": "invalid request"}
    if first.get("type") == "json_invalid":
        position = first["loc"][-1]
        message = f"body: not valid JSON ({first['ctx']['error']} at character {position})"
    else:
        where = ".".join(str(part) for part in first.get("loc", [])[1:]) or "body"
        message = f"{where}: {first.get('msg', 'invalid')}"
    return JSONResponse({"detail": errors, "message": message}, status_code=422)


async def http_error(request: Request, error: Exception) -> Response:
    """Starlette's and FastAPI's own refusals, reworded to name the problem as ours do."""
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 413 and error.detail == TOO_LARGE_DETAIL:
        limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY, MAX_BODY_BYTES)
        error = HTTPException(413, f"body: larger than the limit of {limit:,} bytes")
    elif error.status_code == 400 and error.detail == UNPARSABLE_DETAIL:
        # Bodies that json.loads cannot even read: nested too deep, numbers too long, not UTF-8.
        error = HTTPException(422, f"body: not valid JSON ({error.__cause__})")
    return await http_exception_handler(request, error)


def declared_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_json(kind: str) -> bool:
    """As FastAPI decides whether to parse a body: application/json or application/*+json."""
    main, _, sub = kind.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))
