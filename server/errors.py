"""Every refusal the server answers, mapped to HTTP once: the trainer's and the run library's
domain errors and Starlette's and FastAPI's own, reworded so that each names the field or the
problem."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

from engine.checkpoint import CheckpointError
from engine.training import ConfigError
from server.config import MAX_BODY_BYTES
from server.gallery import GalleryFull, GalleryNotSaved, NoSuchDrawing
from server.images import ImageError
from server.store import StoreError
from server.trainer.protocol import Conflict, Invalid, NotFound, TrainerUnavailable

# What Starlette and FastAPI answer, without naming a field, when a body is too big or unparsable.
TOO_LARGE_DETAIL = "Content Too Large"
UNPARSABLE_DETAIL = "There was an error parsing the body"


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Conflict, refusal(status.HTTP_409_CONFLICT))
    app.add_exception_handler(Invalid, refusal(422))
    app.add_exception_handler(ConfigError, refusal(422))
    app.add_exception_handler(CheckpointError, refusal(422, "body: "))
    app.add_exception_handler(TrainerUnavailable, refusal(status.HTTP_503_SERVICE_UNAVAILABLE))
    app.add_exception_handler(NotFound, refusal(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(StoreError, refusal(status.HTTP_503_SERVICE_UNAVAILABLE))
    app.add_exception_handler(ImageError, image_error)
    app.add_exception_handler(GalleryFull, refusal(status.HTTP_409_CONFLICT))
    app.add_exception_handler(NoSuchDrawing, refusal(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(GalleryNotSaved, refusal(status.HTTP_503_SERVICE_UNAVAILABLE))


def refusal(
    status_code: int, prefix: str = ""
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """A handler that answers ``{"detail": message}`` with ``status_code``."""

    async def handle(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"{prefix}{error}"}, status_code=status_code)

    return handle


async def image_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ImageError)
    return JSONResponse({"detail": error.message}, status_code=error.status_code)


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
        refused = f"content type {kind or 'missing'!r} is not supported: send application/json"
        return JSONResponse({"detail": refused}, status_code=415)
    # Without the offending input: it may be megabytes, or NaN, which JSON cannot carry.
    without_input = [
        {key: value for key, value in item.items() if key != "input"} for item in error.errors()
    ]
    errors: list[dict[str, Any]] = jsonable_encoder(
        without_input, custom_encoder={Exception: str, float: float_text}
    )
    first: dict[str, Any] = errors[0] if errors else {"loc": ["body"], "msg": "invalid request"}
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
