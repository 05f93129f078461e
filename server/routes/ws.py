"""The live stream: ``/ws``, for every browser in the room (see ``server.frames``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, status

router = APIRouter()


def same_origin(websocket: WebSocket) -> bool:
    """Browsers always send Origin; a page from another site must not get our stream.

    Clients that are not browsers (scripts, tests) send none and are let in: they could
    forge any header anyway. The page's own origin matches the Host it connected to.
    """
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    host = websocket.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


@router.websocket("/ws")
async def stream(websocket: WebSocket) -> None:
    if not same_origin(websocket):
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION)
        return
    await websocket.accept()
    await websocket.app.state.broadcaster.serve(websocket)
