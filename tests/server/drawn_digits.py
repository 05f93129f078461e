"""Digits that look drawn on a phone, not written on a form: thick round strokes of one width,
made deterministically from a seed. Each digit is a few strokes in a unit box (y down); a
"hand" slants, squeezes, turns and jitters them, and Pillow draws them white on black, 280
pixels a side, the way the draw pad exports them."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw

SIDE = 280
Stroke = list[tuple[float, float]]


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float) -> Stroke:
    """Points along an ellipse from ``start`` to ``end`` degrees (0 = right, 90 = down)."""
    steps = max(8, int(abs(end - start) / 10))
    angles = np.radians(np.linspace(start, end, steps))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


# Two ways to draw each digit; the second ones (a 1 with a foot, a crossed 7, a closed 4, a 9
# on a straight stick...) are how many people draw them and MNIST has few of.
STYLES: dict[int, list[list[Stroke]]] = {
    0: [[arc(0.5, 0.5, 0.28, 0.4, -90, 270)], [arc(0.5, 0.5, 0.36, 0.36, -70, 290)]],
    1: [
        [[(0.38, 0.25), (0.55, 0.1), (0.55, 0.9)]],
        [[(0.3, 0.3), (0.55, 0.1), (0.55, 0.9)], [(0.3, 0.9), (0.8, 0.9)]],
    ],
    2: [
        [[*arc(0.5, 0.32, 0.25, 0.22, 190, 380), (0.25, 0.9), (0.78, 0.9)]],
        [
            [
                *arc(0.5, 0.3, 0.3, 0.2, 180, 400),
                (0.22, 0.85),
                *arc(0.3, 0.8, 0.08, 0.07, 270, 450),
                (0.85, 0.88),
            ]
        ],
    ],
    3: [
        [arc(0.45, 0.3, 0.25, 0.2, 200, 450) + arc(0.45, 0.7, 0.28, 0.2, -90, 150)],
        [[(0.2, 0.12), (0.75, 0.12), (0.42, 0.45), *arc(0.45, 0.68, 0.3, 0.22, -80, 160)]],
    ],
    4: [
        [[(0.62, 0.9), (0.62, 0.1), (0.18, 0.62), (0.82, 0.62)]],
        [[(0.3, 0.1), (0.22, 0.55), (0.82, 0.55)], [(0.65, 0.25), (0.65, 0.92)]],
    ],
    5: [
        [[(0.75, 0.1), (0.32, 0.1), (0.3, 0.45), *arc(0.48, 0.65, 0.27, 0.24, -120, 150)]],
        [
            [(0.32, 0.1), (0.3, 0.45), *arc(0.5, 0.66, 0.3, 0.25, -130, 160)],
            [(0.3, 0.1), (0.8, 0.1)],
        ],
    ],
    6: [
        [[(0.68, 0.1), (0.38, 0.4), *arc(0.5, 0.68, 0.22, 0.22, 200, 560)]],
        [arc(0.62, 0.55, 0.38, 0.45, 250, 180) + arc(0.5, 0.7, 0.25, 0.2, 180, 540)],
    ],
    7: [
        [[(0.2, 0.12), (0.8, 0.12), (0.42, 0.9)]],
        [[(0.15, 0.15), (0.85, 0.12), (0.5, 0.9)], [(0.3, 0.5), (0.8, 0.5)]],
    ],
    8: [
        [arc(0.5, 0.28, 0.18, 0.18, 90, 450), arc(0.5, 0.7, 0.23, 0.2, -90, 270)],
        [arc(0.5, 0.3, 0.25, 0.2, 90, 450), arc(0.5, 0.72, 0.3, 0.2, -90, 270)],
    ],
    9: [
        [arc(0.5, 0.3, 0.22, 0.2, 0, 360), [(0.72, 0.3), (0.68, 0.9)]],
        [arc(0.45, 0.32, 0.28, 0.24, 0, 360), [(0.73, 0.32), (0.73, 0.92)]],
    ],
}


def drawn_digit(digit: int, seed: int) -> np.ndarray:
    """A 280x280 grey picture (0 = black, 1 = white ink) of ``digit`` in the hand of ``seed``."""
    rng = np.random.default_rng([digit, seed])
    strokes = STYLES[digit][seed % len(STYLES[digit])]
    slant = rng.uniform(-0.25, 0.15)
    squeeze = rng.uniform(0.75, 1.3)
    turn = math.radians(rng.uniform(-10, 10))
    width = rng.uniform(0.12, 0.2) * SIDE
    image = Image.new("L", (SIDE, SIDE), 0)
    pen = ImageDraw.Draw(image)
    for stroke in strokes:
        points = []
        for x, y in stroke:
            x, y = 0.5 + (x - 0.5) * squeeze + slant * (0.5 - y), y
            x, y = x + rng.normal(0, 0.012), y + rng.normal(0, 0.012)
            dx, dy = x - 0.5, y - 0.5
            x, y = (
                0.5 + dx * math.cos(turn) - dy * math.sin(turn),
                0.5 + dx * math.sin(turn) + dy * math.cos(turn),
            )
            points.append((SIDE * (0.1 + 0.8 * x), SIDE * (0.1 + 0.8 * y)))
        pen.line(points, fill=255, width=round(width), joint="curve")
        for px, py in (points[0], points[-1]):  # round ends, as a finger makes them
            pen.ellipse([px - width / 2, py - width / 2, px + width / 2, py + width / 2], fill=255)
    return np.asarray(image, np.float32) / 255


def png(picture: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.rint(picture * 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def drawn_set(per_digit: int, first_seed: int = 0) -> list[tuple[int, np.ndarray]]:
    """``per_digit`` drawings of every digit, in the order a room might send them."""
    return [
        (digit, drawn_digit(digit, seed))
        for seed in range(first_seed, first_seed + per_digit)
        for digit in range(10)
    ]
