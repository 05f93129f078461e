"""The room's digits: anyone sends a drawing to the board with the digit they meant; everyone
sees the network read them; the presenter moderates, sets how the room is used, and exports.

Drawings are kept as the network sees them (MNIST's 28x28 bytes), in the run library, and read
again with the live weights on every request and frame (:mod:`server.scoreboard`). Hidden
drawings exist only for the presenter: no frame, list, picture or export shows them to anyone
else.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Annotated, Any, cast

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from engine.data.mnist import PIXELS
from server.bodies import drawing_dicts, gallery_dict
from server.deps import GalleryDep, IsPresenter, Presenter, ScoreboardDep, ViewDep
from server.exports import kaggle_csv, npz, png
from server.gallery import AUTHOR_LENGTH, Drawing, Gallery
from server.images import IMAGE_TYPES, image_to_mnist, media_type, pixels_to_array
from server.openapi import ERROR
from server.routes.classify import IMAGE_SCHEMA, PIXELS_SCHEMA
from server.scoreboard import Scoreboard
from server.submissions import BURST, PER_MINUTE, allow_submission

router = APIRouter(prefix="/api/gallery", tags=["gallery"])

# Less ink than this many full pixels is a tap or a speck, not a digit (the thinnest MNIST "1"
# has over forty).
MIN_INK_PIXELS = 4
MAX_SCALE = 16
JSON_FIELDS = ("pixels", "label", "author")

SUBMISSION_SCHEMA = {
    "type": "object",
    "required": ["pixels", "label"],
    "properties": {
        "pixels": cast(dict[str, Any], PIXELS_SCHEMA["properties"])["pixels"],
        "label": {"type": "integer", "minimum": 0, "maximum": 9},
        "author": {"type": ["string", "null"], "maxLength": AUTHOR_LENGTH},
    },
    "additionalProperties": False,
}
SUBMISSION_REFUSALS: dict[int | str, dict[str, Any]] = {
    409: {"description": "The gallery is full", "content": ERROR},
    429: {
        "description": f"More than {BURST} drawings at once or {PER_MINUTE} a minute from one "
        "device; Retry-After says when to send again",
        "content": ERROR,
    },
    503: {"description": "The drawing could not be stored", "content": ERROR},
}
WRONG_TOKEN: dict[int | str, dict[str, Any]] = {
    403: {"description": "A wrong presenter token (none is needed here)", "content": ERROR},
}
DrawingId = Annotated[int, Path(description="a drawing's id, from POST or GET /api/gallery")]
LabelQuery = Annotated[
    int | None, Query(ge=0, le=9, description="with an image: the digit its author meant")
]
AuthorQuery = Annotated[
    str | None, Query(max_length=AUTHOR_LENGTH, description="with an image: a first name")
]


class DrawingChanges(BaseModel):
    """Moderation: hide a drawing from every screen, or show it again."""

    model_config = ConfigDict(extra="forbid", strict=True)
    hidden: bool


class GalleryChanges(BaseModel):
    """The presenter's settings; those not sent stay as they are."""

    model_config = ConfigDict(extra="forbid", strict=True)
    learn: bool | None = Field(None, description="mix the training half into every mini-batch")
    hold_out: bool | None = Field(None, description="keep half of the drawings out, to test on")
    names: bool | None = Field(None, description="show first names on every screen")


# Sending a drawing


@router.post(
    "",
    status_code=201,
    responses=SUBMISSION_REFUSALS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": SUBMISSION_SCHEMA},
                **{kind: {"schema": IMAGE_SCHEMA} for kind in IMAGE_TYPES},
            },
        }
    },
)
async def send_drawing(
    request: Request,
    gallery: GalleryDep,
    scoreboard: ScoreboardDep,
    label: LabelQuery = None,
    author: AuthorQuery = None,
) -> dict[str, Any]:
    """Send a drawing to the board: ``{"pixels": [784 numbers in 0..1], "label": d, "author":
    "a first name"}`` (pixels as the network sees them), or a picture (PNG, JPEG, WebP) with
    ``?label=d&author=…``, preprocessed like MNIST as POST /api/classify does. Answers its
    ``id`` and the live network's ``digit`` and ``probabilities``. The author's name is shown
    to the presenter only, unless the presenter shows names to everyone."""
    body = await request.body()
    content_type = request.headers.get("content-type", "")

    def keep() -> dict[str, Any]:
        pixels, meant, name = submission(body, content_type, label, author)
        allow_submission(request)
        drawing = gallery.add(meant, pixels, name)
        scoreboard.gallery_changed()
        (answer,) = drawing_dicts(scoreboard.read((drawing,)), presenter=False, names=False)
        return {key: answer[key] for key in ("id", "digit", "probabilities")}

    return await run_in_threadpool(keep)


def submission(
    body: bytes, content_type: str, label: int | None, author: str | None
) -> tuple[np.ndarray, int, str | None]:
    """The drawing's bytes as the gallery keeps them, the digit meant, and the author."""
    if media_type(content_type) == "application/json":
        document = json_document(body)
        pixels = pixels_to_array(document["pixels"])
        label, author = document.get("label"), document.get("author")
    else:
        pixels = image_to_mnist(body, content_type)
    codes = np.rint(pixels * 255).astype(np.uint8)
    if int(codes.sum()) < MIN_INK_PIXELS * 255:
        raise HTTPException(422, "pixels: the drawing is blank: draw a digit first")
    return codes, checked_label(label), checked_author(author)


def json_document(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deeply
        raise HTTPException(422, f"body: not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise HTTPException(
            422, f'body: send {{"pixels": [{PIXELS} numbers in 0..1], "label": 0-9, "author": …}}'
        )
    for name in document:
        if name not in JSON_FIELDS:
            raise HTTPException(422, f"{name}: not a field here; send {', '.join(JSON_FIELDS)}")
    if "pixels" not in document:
        raise HTTPException(422, f"pixels: required: {PIXELS} numbers in 0..1, row by row")
    return document


def checked_label(label: object) -> int:
    if label is None:
        raise HTTPException(422, "label: required: the digit (0-9) the drawing is meant to be")
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label <= 9:
        raise HTTPException(422, "label: must be a whole number from 0 to 9")
    return label


def checked_author(author: object) -> str | None:
    """A first name, trimmed; None for none."""
    if author is None:
        return None
    if not isinstance(author, str):
        raise HTTPException(422, "author: must be text: a first name, or null")
    name = " ".join(author.split())
    if len(name) > AUTHOR_LENGTH:
        raise HTTPException(422, f"author: at most {AUTHOR_LENGTH} characters, please")
    if any(unicodedata.category(character).startswith("C") for character in name):
        raise HTTPException(422, "author: letters only: no control or formatting characters")
    return name or None


# Reading the gallery


@router.get("", responses=WRONG_TOKEN)
def read_gallery(
    gallery: GalleryDep, scoreboard: ScoreboardDep, view: ViewDep, presenter: IsPresenter
) -> dict[str, Any]:
    """The room's drawings, oldest first, as the live network reads them now: ``items``
    (``id``, ``label`` meant, ``digit`` read, ``probabilities``, ``held_out``, ``created_at``;
    ``author`` and ``hidden`` with the presenter's token, and ``author`` for everyone while
    names are shown), ``count`` and ``accuracy`` of the visible ones, their ``confusion``
    (10x10, row = label, column = reading), the two halves' ``training`` and ``held_out``
    scores, ``settings`` and ``capacity``. Hidden drawings are listed for the presenter only."""
    drawings = gallery.drawings if presenter else gallery.visible()
    snapshot = view.snapshot
    scores = scoreboard.read(drawings, snapshot.network)
    return gallery_dict(scores, gallery, snapshot.run, snapshot.batch, presenter)


@router.get(
    "/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def export_csv(gallery: GalleryDep, _: Presenter) -> Response:
    """The visible drawings in Kaggle's digit-recognizer format: ``label,pixel0,…,pixel783``,
    one row per drawing, integers 0-255 (0 = no ink), row by row."""
    return Response(
        kaggle_csv(gallery.visible()),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="room-digits.csv"'},
    )


@router.get(
    "/export.npz",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def export_npz(gallery: GalleryDep, _: Presenter) -> Response:
    """The visible drawings as a NumPy archive: ``images`` (uint8, n x 28 x 28), ``labels``,
    ``ids``, ``held_out``, ``created_at``, ``authors``."""
    visible = gallery.visible()
    return Response(
        npz(visible, np.array([gallery.held_out(d) for d in visible], bool)),
        media_type="application/octet-stream",
        headers={"Content-Disposition": 'attachment; filename="room-digits.npz"'},
    )


@router.get("/{drawing_id}", responses=WRONG_TOKEN)
def read_drawing(
    drawing_id: DrawingId,
    gallery: GalleryDep,
    scoreboard: ScoreboardDep,
    presenter: IsPresenter,
) -> dict[str, Any]:
    """One drawing as GET /api/gallery lists it, with its ``pixels``: 784 values in 0..1 (whole
    255ths), row by row, ready for POST /api/classify or POST /api/explain."""
    return drawing_dict(gallery, scoreboard, drawing_id, presenter)


@router.get(
    "/{drawing_id}/image.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
        304: {"description": "The picture has not changed since the ETag sent"},
        **WRONG_TOKEN,
    },
)
def drawing_image(
    request: Request,
    drawing_id: DrawingId,
    gallery: GalleryDep,
    presenter: IsPresenter,
    scale: Annotated[int, Query(ge=1, le=MAX_SCALE, description="pixels per pixel")] = 1,
) -> Response:
    """The drawing as the network sees it: a 28x28 PNG (times ``scale``), white ink on black."""
    drawing = gallery.find(drawing_id, hidden_too=presenter)
    tag = f'"{hashlib.blake2b(drawing.pixels, digest_size=8).hexdigest()}-{scale}"'
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    return Response(png(drawing, scale), media_type="image/png", headers=headers)


# The presenter's


@router.patch("")
def change_gallery(
    changes: GalleryChanges,
    gallery: GalleryDep,
    scoreboard: ScoreboardDep,
    view: ViewDep,
    _: Presenter,
) -> dict[str, Any]:
    """Learn from the room's drawings or stop, hold half of them out or not, show first names
    to everyone or to the presenter only. With ``learn`` on, the answer comes once the trainer
    has the training half. Answers as GET /api/gallery does for the presenter."""
    gallery.change_settings(**changes.model_dump(exclude_none=True))
    scoreboard.gallery_changed()
    scoreboard.sync_trainer()
    return read_gallery(gallery, scoreboard, view, presenter=True)


@router.delete("")
def clear_gallery(gallery: GalleryDep, scoreboard: ScoreboardDep, _: Presenter) -> dict[str, int]:
    """Delete every drawing, on every screen at once (export them first to keep them)."""
    deleted = gallery.clear()
    scoreboard.gallery_changed()
    return {"deleted": deleted}


@router.patch("/{drawing_id}")
def moderate_drawing(
    drawing_id: DrawingId,
    changes: DrawingChanges,
    gallery: GalleryDep,
    scoreboard: ScoreboardDep,
    _: Presenter,
) -> dict[str, Any]:
    """Hide a drawing from every screen at once (``{"hidden": true}``), or show it again."""
    gallery.set_hidden(drawing_id, changes.hidden)
    scoreboard.gallery_changed()
    return drawing_dict(gallery, scoreboard, drawing_id, presenter=True)


@router.delete("/{drawing_id}")
def delete_drawing(
    drawing_id: DrawingId, gallery: GalleryDep, scoreboard: ScoreboardDep, _: Presenter
) -> dict[str, int]:
    """Delete a drawing for good, on every screen at once."""
    gallery.delete(drawing_id)
    scoreboard.gallery_changed()
    return {"deleted": 1}


def drawing_dict(
    gallery: Gallery, scoreboard: Scoreboard, drawing_id: int, presenter: bool
) -> dict[str, Any]:
    drawing: Drawing = gallery.find(drawing_id, hidden_too=presenter)
    (answer,) = drawing_dicts(scoreboard.read((drawing,)), presenter, gallery.settings.names)
    codes = np.frombuffer(drawing.pixels, np.uint8)
    return {**answer, "pixels": (codes / 255).tolist()}
