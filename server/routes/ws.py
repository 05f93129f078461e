"""The live stream: ``/ws``, for every browser in the room (see ``server.frames``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, status

from server.broadcast import Resume
from server.deps import client_address, is_the_token
from server.limits import Door

router = APIRouter()
# "Try again later": the page says the room is full and retries after a jittered wait.
CLOSE_TRY_AGAIN_LATER = 1013
MAX_RUN_ID = 200
MAX_DIGITS = 18


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


def resume_point(websocket: WebSocket) -> Resume | None:
    """Where a reconnecting page was: ``?run=ID&next=N``, the run it followed and the next
    batch index it waits for. Raises ValueError naming a bad field."""
    run, after = websocket.query_params.get("run"), websocket.query_params.get("next")
    if run is None and after is None:
        return None
    if not run or len(run) > MAX_RUN_ID:
        raise ValueError("run: give the id of the run the page followed")
    if after is None or not after.isdigit() or len(after) > MAX_DIGITS:
        raise ValueError("next: give the batch index the page waits for (0 or more)")
    return Resume(run, int(after))


@router.websocket("/ws")
async def stream(websocket: WebSocket) -> None:
    """Every frame of the run, to any page; at most ``serve --max-viewers`` at once and
    ``--connect-limit`` new ones per address, else closed with 1013. The presenter's page
    (``?token=``) always gets in. A page that reconnects says where it was (``?run=&next=``)
    and gets the batches it missed, on this server process or any other (see
    :meth:`Broadcaster.serve`)."""
    if not same_origin(websocket):
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION)
        return
    try:
        resume = resume_point(websocket)
    except ValueError as error:
        await websocket.accept()
        await websocket.close(status.WS_1008_POLICY_VIOLATION, str(error))
        return
    door: Door = websocket.app.state.door
    presenter = is_the_token(websocket.query_params.get("token", ""), websocket.app.state.settings)
    refused = None if presenter else door.enter(client_address(websocket))
    if refused is not None:
        await websocket.accept()  # a close before accepting would reach the page without a code
        await websocket.close(CLOSE_TRY_AGAIN_LATER, refused)
        return
    try:
        await websocket.accept()
        await websocket.app.state.broadcaster.serve(websocket, resume)
    finally:
        if not presenter:
            door.leave()
