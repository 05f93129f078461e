"""The room's digits in a real chromium: a phone sends drawings to the board, the projected
presenter page shows them with both confusion matrices, a click explains one, and moderation
reaches a viewer's screen."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from drawn_digits import drawn_set, png
from live_server import LiveServer
from test_visualiser import INK, LAYOUT_PROBLEMS, WAIT_MS, presenter_url

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844, "device_scale_factor": 2, "has_touch": True}
# Strokes in the pad's unit square: a 7, a 1 and a 0, as a finger draws them.
STROKES = {
    7: [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]],
    1: [[(0.4, 0.3), (0.55, 0.15), (0.55, 0.85)]],
    0: [
        [
            (0.5 + 0.22 * c, 0.5 + 0.32 * s)
            for c, s in zip(
                [1, 0.7, 0, -0.7, -1, -0.7, 0, 0.7, 1], [0, 0.7, 1, 0.7, 0, -0.7, -1, -0.7, 0]
            )
        ]
    ],
}


@pytest.fixture
def empty_gallery(server: LiveServer) -> LiveServer:
    server.ok("DELETE", "/api/gallery")
    server.ok("PATCH", "/api/gallery", json={"learn": False, "names": False, "hold_out": True})
    server.fresh_run(epochs=50)
    server.ok("PATCH", "/api/run", json={"speed": None})
    for _ in range(60):  # a network that reads digits a little: some right, some wrong
        server.ok("POST", "/api/run/step")
    return server


def draw(page: Any, digit: int) -> None:
    box = page.locator("[data-pad]").bounding_box()
    for stroke in STROKES[digit]:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for start, end in itertools.pairwise(points):
            for t in range(1, 9):
                page.mouse.move(
                    start[0] + (end[0] - start[0]) * t / 8, start[1] + (end[1] - start[1]) * t / 8
                )
        page.mouse.up()


def send_from(page: Any, digit: int) -> None:
    draw(page, digit)
    page.click(f".digit-choice:text-is('{digit}')")
    page.click('[data-send] [type="submit"]')
    page.wait_for_function(
        "() => document.querySelector('[data-send-message]').dataset.kind !== ''",
        timeout=WAIT_MS,
    )
    message = page.inner_text("[data-send-message]")
    assert message.startswith("On the board!"), message
    assert page.evaluate("window.backpropLive === undefined"), "the phone page opens no socket"


def thumbs(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(
        """() => [...document.querySelectorAll('.read-as')].flatMap((column, read) =>
             [...column.querySelectorAll('.thumb')].map((thumb) => ({
               id: +thumb.dataset.id, read, wrong: thumb.classList.contains('wrong'),
               title: thumb.title, loaded: thumb.querySelector('img').complete
                 && thumb.querySelector('img').naturalWidth === 28 })))"""
    )


def test_a_phone_sends_three_drawings_and_the_projector_shows_them(
    empty_gallery: LiveServer, open_page: Any, screenshot_dir: Path
) -> None:
    server = empty_gallery
    projector = open_page(presenter_url(server, "&present&gallery"))
    projector.wait_for_function("() => window.backpropLive.gallery.frame !== null", timeout=WAIT_MS)
    assert projector.locator("[data-gallery='invite']").is_visible(), (
        "an empty gallery says how to join"
    )
    phone = open_page(
        server.url + "/draw", **PHONE, extra_http_headers={"X-Forwarded-For": "10.9.0.1"}
    )
    phone.fill("[data-name]", "Ada")
    for digit in (7, 1, 0):
        send_from(phone, digit)
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.screenshot(path=screenshot_dir / "gallery-phone.png", full_page=True)

    projector.wait_for_function(
        "() => [...document.querySelectorAll('.read-as .thumb')].filter("
        "(thumb) => thumb.title.includes('by Ada')).length === 3",
        timeout=WAIT_MS,
    )
    projector.wait_for_function(
        "() => [...document.querySelectorAll('.thumb img')]"
        ".every((image) => image.complete && image.naturalWidth)",
        timeout=WAIT_MS,
    )
    shown = thumbs(projector)
    listed = {item["id"]: item for item in server.ok("GET", "/api/gallery")["items"]}
    assert sorted(listed) == sorted(thumb["id"] for thumb in shown)
    assert sorted(item["label"] for item in listed.values()) == [0, 1, 7]
    for thumb in shown:
        item = listed[thumb["id"]]
        assert thumb["read"] == item["digit"], "grouped by the digit the network reads"
        assert thumb["wrong"] == (item["digit"] != item["label"]), "a red edge on wrong ones"
        assert f"meant {item['label']}" in thumb["title"] and "by Ada" in thumb["title"]
    assert "Ada's" in projector.inner_text("[data-gallery='readout']")
    frame = projector.evaluate("window.backpropLive.gallery.frame")
    right = sum(item["digit"] == item["label"] for item in listed.values())
    assert projector.inner_text("[data-gallery='room']") == f"{round(100 * right / 3)}%"
    assert sum(map(sum, frame["confusion"])) == 3
    projector.wait_for_timeout(400)  # a few animation frames to draw the matrices
    for canvas in ('[data-confusion="room"]', '[data-confusion="test"]', "[data-per-digit]"):
        assert projector.evaluate(INK, canvas) > 0.05, canvas
    assert projector.evaluate(LAYOUT_PROBLEMS) == []
    projector.screenshot(path=screenshot_dir / "gallery-projector-1920x1080.png")


def test_a_full_room_fits_a_small_projector_and_learning_shows_the_held_out_half(
    empty_gallery: LiveServer, open_page: Any, screenshot_dir: Path
) -> None:
    server = empty_gallery
    for number, (digit, picture) in enumerate(drawn_set(6)):
        answer = server.http.post(
            "/api/gallery",
            content=png(picture),
            params={"label": digit, "author": f"student {number // 3}"},
            headers={"content-type": "image/png", "X-Forwarded-For": f"10.8.0.{number // 4}"},
        )
        assert answer.status_code == 201, answer.text
    server.ok("PATCH", "/api/gallery", json={"learn": True})
    server.ok("POST", "/api/run/start")
    page = open_page(presenter_url(server, "&present&gallery"), width=1024, height=768)
    page.wait_for_function(
        "() => window.backpropLive.gallery.frame?.count === 60"
        " && window.backpropLive.cost.roomEvaluations.length >= 2",
        timeout=WAIT_MS,
    )
    server.ok("POST", "/api/run/pause")
    page.wait_for_timeout(1500)
    frame = page.evaluate("window.backpropLive.gallery.frame")
    held, learnt = frame["held_out"], frame["training"]
    assert held["count"] + learnt["count"] == 60 and held["count"] > 0
    assert page.inner_text("[data-gallery='held']") == (
        f"{round(100 * held['accuracy'])}% held out ({held['count']} never trained on; "
        f"{round(100 * learnt['accuracy'])}% of {learnt['count']} learnt from)"
    )
    assert page.locator(".thumb.learnt").count() == learnt["count"], "the half learnt from"
    assert page.evaluate(LAYOUT_PROBLEMS) == []
    page.screenshot(path=screenshot_dir / "gallery-projector-1024x768.png")
    server.ok("PATCH", "/api/gallery", json={"learn": False})


def test_a_click_explains_a_drawing_and_hiding_reaches_a_viewer(
    empty_gallery: LiveServer, open_page: Any, screenshot_dir: Path
) -> None:
    server = empty_gallery
    presenter = open_page(presenter_url(server, "&gallery"))
    viewer = open_page(server.url + "/?gallery")
    for digit in (7, 1):
        draw(presenter, digit)
        presenter.click(f"[data-send] .digit-choice:text-is('{digit}')")
        presenter.click('[data-send] [type="submit"]')
        presenter.wait_for_function(
            "() => document.querySelector('[data-send-message]').dataset.kind === 'sent'",
            timeout=WAIT_MS,
        )
    for page in (presenter, viewer):
        page.wait_for_function(
            "() => document.querySelectorAll('.read-as .thumb').length === 2", timeout=WAIT_MS
        )
    assert viewer.locator("[data-gallery-controls]").is_hidden()
    assert viewer.locator(".thumb .hide").count() == 0
    assert all("by " not in thumb["title"] for thumb in thumbs(viewer)), "no names for viewers"

    first = thumbs(presenter)[0]["id"]
    presenter.click(f'.thumb[data-id="{first}"] .show')
    presenter.wait_for_selector("[data-explain]", state="visible", timeout=WAIT_MS)
    presenter.wait_for_function("() => window.backpropLive.explain.settled", timeout=WAIT_MS)
    label = server.ok("GET", f"/api/gallery/{first}")["label"]
    assert presenter.evaluate("window.backpropLive.explain.trace.label") == label
    viewer.wait_for_selector("[data-explain]", state="visible", timeout=WAIT_MS)
    presenter.keyboard.press("Escape")
    presenter.wait_for_selector("[data-explain]", state="hidden", timeout=WAIT_MS)

    presenter.hover(f'.thumb[data-id="{first}"]')
    presenter.click(f'.thumb[data-id="{first}"] .hide')
    viewer.wait_for_function(
        f"() => !document.querySelector('.thumb[data-id=\"{first}\"]')", timeout=WAIT_MS
    )
    presenter.wait_for_selector("[data-hidden-list] summary:text('1 hidden')", timeout=WAIT_MS)
    presenter.click("[data-hidden-list] summary")
    presenter.click("[data-hidden-list] [data-unhide]")
    viewer.wait_for_function(
        f"() => !!document.querySelector('.thumb[data-id=\"{first}\"]')", timeout=WAIT_MS
    )
    presenter.keyboard.press("g")
    assert presenter.locator('[data-panel="gallery"]').is_hidden()
    assert presenter.locator('[data-panel="network"]').is_visible()
    presenter.keyboard.press("g")
    assert presenter.locator('[data-panel="gallery"]').is_visible()
    presenter.screenshot(path=screenshot_dir / "gallery-presenter.png")
