"""Route dependencies as ``Annotated`` aliases: who is asking, and which run they mean."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from server.broadcast import Broadcaster
from server.config import Settings
from server.session import Session


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Session:
    return request.app.state.session


def get_broadcaster(request: Request) -> Broadcaster:
    return request.app.state.broadcaster


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
BroadcasterDep = Annotated[Broadcaster, Depends(get_broadcaster)]


def require_presenter(request: Request, settings: SettingsDep) -> None:
    """Only the presenter changes the run: 401 without a bearer token, 403 with a wrong one.

    The comparison takes the same time however much of the token is right, so it cannot be
    guessed one character at a time.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this needs the presenter's token: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(token.strip().encode(), settings.token.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong presenter token")


Presenter = Annotated[None, Depends(require_presenter)]
