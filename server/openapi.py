"""The error answers in the OpenAPI schema (``/openapi.json``, ``/docs``).

FastAPI documents only what a route returns when it succeeds, and a 422 whose ``detail`` is a
list. Our routes also refuse with a sentence (``{"detail": "pixels: expected 784 numbers"}``),
refuse bodies by size and type, and refuse viewers the presenter's controls. Written into the
schema once here, for every route including ones added later, so that /docs shows them and
schema-driven clients and fuzzers can hold the server to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from server.deps import RateLimit

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "description": "a sentence naming the field or the problem, or FastAPI's list",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
        },
        "message": {"type": "string", "description": "with a list: the first problem, named"},
    },
}
ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
# A body that declares a Content-Length over the limit is refused by Starlette before any
# route runs, in plain text.
TOO_LARGE = {**ERROR, "text/plain": {"schema": {"type": "string"}}}

BODY_ERRORS = {
    "413": {"description": "The body is over the size limit", "content": TOO_LARGE},
    "415": {"description": "The body's content type is not accepted here", "content": ERROR},
    "422": {"description": "A value is invalid; the message names it", "content": ERROR},
}
NOT_FOUND = {"404": {"description": "Nothing is kept under that name", "content": ERROR}}
RATE_LIMITED = {
    "429": {
        "description": "Over a rate limit (the message names it); try again after Retry-After",
        "headers": {
            "Retry-After": {"description": "whole seconds to wait", "schema": {"type": "integer"}}
        },
        "content": ERROR,
    }
}
PRESENTER_ERRORS = {
    "401": {"description": "No presenter token (Authorization: Bearer <token>)", "content": ERROR},
    "403": {"description": "A wrong presenter token", "content": ERROR},
    "409": {"description": "The run's status does not allow this now", "content": ERROR},
    "503": {"description": "The training worker did not answer in time", "content": ERROR},
}


def document_errors(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Make ``app.openapi()`` include the error answers of every route of ``routers``."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    limited = rate_limited(routers)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            add_errors(generate(), limited)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def rate_limited(routers: Iterable[APIRouter]) -> set[tuple[str, str]]:
    """The (path, method) of every operation that depends on a :class:`RateLimit`."""
    return {
        (route.path, method.lower())
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
        and any(isinstance(d.call, RateLimit) for d in dependencies(route.dependant))
        for method in route.methods or ()
    }


def dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from dependencies(dependency)


def add_errors(schema: dict[str, Any], limited: set[tuple[str, str]]) -> None:
    """Bodies can be too big, of the wrong type or invalid; a name in the path can name
    nothing; the presenter's routes (those with a ``security`` requirement: see
    ``server.deps.presenter_token``) can also be refused; and the ``limited`` ones can be over
    a rate limit."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if (path, method) in limited:
                responses.update(RATE_LIMITED)
            if "requestBody" in operation:
                responses.update(BODY_ERRORS)
            if any(parameter["in"] == "path" for parameter in operation.get("parameters", [])):
                responses.update(NOT_FOUND)
            if operation.get("security"):
                responses.update(PRESENTER_ERRORS)
