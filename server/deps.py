"""Route dependencies as ``Annotated`` aliases: who is asking, and what of the run they reach."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from server.broadcast import Broadcaster
from server.config import Settings
from server.gallery import Gallery
from server.limits import REFUSAL_DELAY, Limiter
from server.scoreboard import Scoreboard
from server.shared import SharedFrames
from server.store import Store, StoreError
from server.trainer.client import TrainerClient
from server.view import RunView


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_view(request: Request) -> RunView:
    return request.app.state.view


def get_trainer(request: Request) -> TrainerClient:
    return request.app.state.trainer


def get_broadcaster(request: Request) -> Broadcaster:
    return request.app.state.broadcaster


def get_gallery(request: Request) -> Gallery:
    return request.app.state.gallery


def get_scoreboard(request: Request) -> Scoreboard:
    return request.app.state.scoreboard


def get_shared(request: Request) -> SharedFrames | None:
    """With ``serve --redis``: what every web process shows; None for a single process."""
    return request.app.state.shared


def get_library(request: Request) -> Store:
    """The run library, opened by this process at startup (503 if it could not be)."""
    library: Store | None = request.app.state.library
    if library is None:
        raise StoreError(
            "the run library could not be opened when the server started (the server's log "
            "says why); the live run goes on, but no runs are kept"
        )
    return library


SettingsDep = Annotated[Settings, Depends(get_settings)]
ViewDep = Annotated[RunView, Depends(get_view)]
TrainerDep = Annotated[TrainerClient, Depends(get_trainer)]
BroadcasterDep = Annotated[Broadcaster, Depends(get_broadcaster)]
GalleryDep = Annotated[Gallery, Depends(get_gallery)]
ScoreboardDep = Annotated[Scoreboard, Depends(get_scoreboard)]
LibraryDep = Annotated[Store, Depends(get_library)]
SharedDep = Annotated[SharedFrames | None, Depends(get_shared)]


# Declared as a security scheme so that the OpenAPI schema marks the presenter's routes and
# /docs offers an "Authorize" button; the checks themselves are ours (auto_error=False).
presenter_token = HTTPBearer(
    scheme_name="presenter",
    description="The token in the presenter link that `backprop-live serve` prints.",
    auto_error=False,
)


def require_presenter(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(presenter_token)],
) -> None:
    """Only the presenter changes the run: 401 without a bearer token, 403 with a wrong one.

    The comparison takes the same time however much of the token is right, so it cannot be
    guessed one character at a time.
    """
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this needs the presenter's token: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not is_the_token(credentials.credentials, settings):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong presenter token")


def is_the_token(candidate: str, settings: Settings) -> bool:
    return hmac.compare_digest(candidate.encode(), settings.token.encode())


Presenter = Annotated[None, Depends(require_presenter)]


def ask_whether_presenter(request: Request, settings: SettingsDep) -> bool:
    """For routes anyone may read that show the presenter more (authors, hidden drawings):
    whether the request carries the presenter's token. A wrong token is refused (403), so a
    presenter with a stale one finds out; the scheme is read by hand, so these routes are not
    marked as the presenter's in the OpenAPI schema."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        return False
    if not hmac.compare_digest(credentials.encode(), settings.token.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong presenter token")
    return True


IsPresenter = Annotated[bool, Depends(ask_whether_presenter)]


def client_address(connection: HTTPConnection) -> str:
    """Who is asking, for the limits: the address, as forwarded by a trusted proxy if any."""
    return connection.client.host if connection.client else "unknown"


class RateLimit:
    """The dependency that counts a request against the limit of its ``kind`` of work
    (``server.config.RATE_LIMITS``) and refuses it with 429 over it. Not the presenter's."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    async def __call__(self, request: Request) -> None:
        limiter: Limiter | None = request.app.state.limiters.get(self.kind)
        if limiter is None or self.from_presenter(request):
            return
        refusal = limiter.take(client_address(request))
        if refusal is not None:
            await asyncio.sleep(REFUSAL_DELAY)
            headers = {"Retry-After": str(refusal.retry_after)}
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, refusal.message, headers)

    @staticmethod
    def from_presenter(request: Request) -> bool:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        settings: Settings = request.app.state.settings
        return scheme.lower() == "bearer" and is_the_token(credentials.strip(), settings)


ClassifyBudget = Annotated[None, Depends(RateLimit("classify"))]
ExplainBudget = Annotated[None, Depends(RateLimit("explain"))]
TraceBudget = Annotated[None, Depends(RateLimit("trace"))]
DownloadBudget = Annotated[None, Depends(RateLimit("download"))]
