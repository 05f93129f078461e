"""The room's gallery: the drawings students sent to the board, and the presenter's settings
for it.

Drawings live in the run library (:mod:`server.store`), so they outlast restarts and runs; the
web process also holds them all in memory (784 bytes each, a few thousand at most), because
every frame and answer reads them with the latest weights. A change is committed to the store
before it is made here and answered, so what a route returns is on disk. Routes, the
scoreboard's thread and the relay read from any thread without locks: every change replaces
``drawings`` or ``settings`` as a whole, and a lock keeps two changes from interleaving.

Half of the room's digits can be held out of training, to test on. Which half a drawing is in
follows from its id alone, so hiding or deleting others never moves it to the other side.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from engine.data.mnist import PIXELS
from server.store import GalleryRow, Store, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

AUTHOR_LENGTH = 24  # characters of a first name


class GalleryFull(Exception):
    """The gallery holds as many drawings as it may (answered with 409)."""


class NoSuchDrawing(Exception):
    """No drawing has that id, or it is hidden from whoever asks (answered with 404)."""


class GalleryNotSaved(Exception):
    """The run library refused a change; nothing changed (answered with 503)."""


@dataclass(frozen=True)
class Drawing:
    """One drawing as the network sees it: 28x28 bytes, row by row, 0 = no ink."""

    id: int
    label: int  # the digit its author meant
    pixels: bytes
    author: str | None
    created_at: float  # Unix seconds
    hidden: bool = False


@dataclass(frozen=True)
class GallerySettings:
    """What the presenter decides about the room's drawings."""

    learn: bool = False  # mix the training half into the run's mini-batches
    hold_out: bool = True  # keep half of the drawings out of training, to test on
    names: bool = False  # show authors' first names on every screen, not just the presenter's


def in_held_out_half(drawing_id: int) -> bool:
    """Whether a drawing is in the held-out half: a fixed coin toss per id (a hash, so that a
    student who draws 0 to 9 in a row gets digits on both sides)."""
    digest = hashlib.blake2b(drawing_id.to_bytes(8, "little"), digest_size=1).digest()
    return digest[0] & 1 == 1


def pixel_rows(drawings: tuple[Drawing, ...]) -> np.ndarray:
    """The drawings' pixels as uint8 [n, 784]."""
    return np.frombuffer(b"".join(d.pixels for d in drawings), np.uint8).reshape(-1, PIXELS)


class Gallery:
    """The room's drawings (hidden ones too, oldest first) and the presenter's settings."""

    def __init__(self, store: Store | None, capacity: int) -> None:
        self.store = store
        self.capacity = capacity
        self.settings = GallerySettings()
        self.drawings: tuple[Drawing, ...] = tuple(load_drawings(store))
        self.version = 0  # counts changes of the drawings and the settings
        self._last_id = max((d.id for d in self.drawings), default=0)
        self._changing = threading.Lock()

    # Reading

    def visible(self) -> tuple[Drawing, ...]:
        return tuple(d for d in self.drawings if not d.hidden)

    def held_out(self, drawing: Drawing) -> bool:
        """Whether ``drawing`` is kept out of training (never, while hold_out is off)."""
        return self.settings.hold_out and in_held_out_half(drawing.id)

    def training_half(self) -> tuple[Drawing, ...]:
        """The visible drawings the network may learn from."""
        return tuple(d for d in self.visible() if not self.held_out(d))

    def find(self, drawing_id: int, *, hidden_too: bool = False) -> Drawing:
        for drawing in self.drawings:
            if drawing.id == drawing_id and (hidden_too or not drawing.hidden):
                return drawing
        raise NoSuchDrawing(f"id: no drawing {drawing_id} in the gallery")

    # Changing

    def add(self, label: int, pixels: np.ndarray, author: str | None) -> Drawing:
        """Keep a drawing (uint8, 784 values) by ``author``; raises :class:`GalleryFull`."""
        with self._changing:
            if len(self.drawings) >= self.capacity:
                raise GalleryFull(
                    f"the gallery is full ({self.capacity:,} drawings): the presenter can delete "
                    "some or clear it"
                )
            data = np.asarray(pixels, np.uint8).tobytes()
            created_at = time.time()
            stored_id = self._store(
                "keep the drawing", lambda store: store.add_drawing(label, data, author, created_at)
            )
            self._last_id = stored_id or self._last_id + 1
            drawing = Drawing(self._last_id, label, data, author, created_at)
            self._replace((*self.drawings, drawing))
            return drawing

    def set_hidden(self, drawing_id: int, hidden: bool) -> Drawing:
        with self._changing:
            changed = dataclasses.replace(self.find(drawing_id, hidden_too=True), hidden=hidden)
            self._store(
                "hide or show the drawing",
                lambda store: store.set_drawing_hidden(drawing_id, hidden),
            )
            self._replace(tuple(changed if d.id == drawing_id else d for d in self.drawings))
            return changed

    def delete(self, drawing_id: int) -> None:
        with self._changing:
            self.find(drawing_id, hidden_too=True)
            self._store("delete the drawing", lambda store: store.delete_drawing(drawing_id))
            self._replace(tuple(d for d in self.drawings if d.id != drawing_id))

    def clear(self) -> int:
        """Delete every drawing; returns how many there were."""
        with self._changing:
            count = len(self.drawings)
            self._store("clear the gallery", lambda store: store.clear_gallery())
            self._replace(())
            return count

    def change_settings(self, **changes: bool) -> GallerySettings:
        with self._changing:
            self.settings = dataclasses.replace(self.settings, **changes)
            self.version += 1
            return self.settings

    def _replace(self, drawings: tuple[Drawing, ...]) -> None:
        self.drawings = drawings
        self.version += 1

    def _store(self, what: str, write: Callable[[Store], T]) -> T | None:
        """Commit a change to the run library first; without one, the gallery lives in memory."""
        if self.store is None:
            return None
        try:
            return write(self.store)
        except StoreError as error:
            log.error("could not %s: %s", what, error)
            raise GalleryNotSaved(
                f"the server could not {what}: its run library refused the change ({error})"
            ) from error


def load_drawings(store: Store | None) -> list[Drawing]:
    """Every drawing kept in the run library; none when there is no library."""
    if store is None:
        return []
    try:
        rows = store.gallery()
    except StoreError as error:
        log.error("%s; the gallery starts empty", error)
        return []
    return [drawing_from_row(row) for row in rows]


def drawing_from_row(row: GalleryRow) -> Drawing:
    return Drawing(row.id, row.label, row.pixels, row.author, row.created_at, row.hidden)
