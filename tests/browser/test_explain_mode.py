"""Explain mode in a real chromium: the presenter walks one digit through backpropagation and
a viewer's page follows every step; captions fit a 1024x768 projector."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from live_server import LiveServer
from test_visualiser import LAYOUT_PROBLEMS, draw_digit

pytestmark = pytest.mark.browser

WAIT_MS = 30_000
STEPS = 7

# The caption of the step on screen: its text, whether its box holds it, and where it is.
CAPTION = """() => {
  const caption = document.querySelector('[data-xp-caption]');
  const box = caption.getBoundingClientRect();
  return {
    text: caption.textContent,
    fits: caption.scrollHeight <= caption.clientHeight,
    inside: box.left >= 0 && box.top >= 0 && box.right <= innerWidth && box.bottom <= innerHeight,
    visible: caption.checkVisibility(),
    fontSize: parseFloat(getComputedStyle(caption).fontSize),
  };
}"""

# Share of the stage canvas that is painted.
STAGE_INK = """() => {
  const canvas = document.querySelector('[data-xp-stage]');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
  return painted / (canvas.width * canvas.height);
}"""


def at_step(page: Any, step: int) -> None:
    """Wait until ``page`` shows ``step`` with its trace loaded and its drawing at rest."""
    page.wait_for_function(
        "(step) => { const x = window.backpropLive.explain;"
        " return x.active && x.step === step && x.settled; }",
        arg=step,
        timeout=WAIT_MS,
    )


def check_caption(page: Any, step: int) -> str:
    caption = page.evaluate(CAPTION)
    assert caption["visible"] and caption["text"].strip(), f"step {step}: no caption"
    assert caption["fits"], f"step {step}: the caption overflows its box: {caption['text']}"
    assert caption["inside"], f"step {step}: the caption is outside the 1024x768 viewport"
    assert caption["fontSize"] >= 16, f"step {step}: caption type too small to project"
    assert page.evaluate(STAGE_INK) > 0.02, f"step {step}: the stage is blank"
    return caption["text"]


def test_presenter_walks_through_backprop_and_a_viewer_follows(
    server: LiveServer, open_page: Any, screenshot_dir: Path
) -> None:
    # Trained a little at full speed, so the network has opinions worth explaining.
    server.fresh_run(epochs=100)
    server.ok("PATCH", "/api/run", json={"speed": None})
    server.ok("POST", "/api/run/start")
    deadline = time.monotonic() + 60
    while server.http.get("/api/run").json()["batch"] < 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    server.ok("PATCH", "/api/run", json={"speed": 20})
    presenter = open_page(f"{server.url}/?token={server.token}", width=1024, height=768)
    viewer = open_page(f"{server.url}/?present", width=1024, height=768)
    viewer_asked: list[tuple[str, str]] = []

    def record(request: Any) -> None:
        if "/api/explain" in request.url:
            viewer_asked.append((request.method, request.url.removeprefix(server.url)))

    viewer.on("request", record)
    for page in (presenter, viewer):
        page.wait_for_function("() => window.backpropLive.state.runId !== null", timeout=WAIT_MS)
    assert not viewer.locator("[data-explain-open]").is_visible()

    presenter.click("[data-explain-open]")
    at_step(presenter, 1)
    assert server.http.get("/api/run").json()["status"] == "paused", "explaining pauses the run"
    assert not presenter.locator(".board").is_visible()
    presenter_example = presenter.evaluate("window.backpropLive.explain.key")

    captions = []
    for step in range(1, STEPS + 1):
        if step == 2:
            presenter.click("[data-xp-next]")
        elif step > 2:
            presenter.keyboard.press("ArrowRight")
        at_step(presenter, step)
        at_step(viewer, step)
        assert viewer.evaluate("window.backpropLive.explain.key") == presenter_example
        captions.append(check_caption(presenter, step))
        first_sentence = captions[-1].split(". ")[0]
        assert check_caption(viewer, step).startswith(first_sentence)
        assert viewer.evaluate(LAYOUT_PROBLEMS) == [], f"step {step} in presentation mode"
        presenter.screenshot(path=screenshot_dir / f"explain-{step}-presenter.png")
        viewer.screenshot(path=screenshot_dir / f"explain-{step}.png")
    assert len(set(captions)) == STEPS, "every step says something of its own"
    # A presenter tab opened (or reloaded) now picks up the walk-through where it is.
    second = open_page(f"{server.url}/?token={server.token}", width=1024, height=768)
    at_step(second, STEPS)
    second.keyboard.press("ArrowLeft")  # and leads from there
    at_step(viewer, STEPS - 1)
    second.keyboard.press("ArrowRight")
    at_step(viewer, STEPS)
    second.close()
    assert not viewer.locator("[data-xp-next]").is_visible(), "viewers follow, they do not lead"

    # Apply: one gradient step on this example; both screens show its cost before and after.
    presenter.fill("[data-xp-lr]", "0.5")
    presenter.click("[data-xp-apply]")
    lesson = (
        "() => window.backpropLive.explain.lesson !== null && window.backpropLive.explain.settled"
    )
    presenter.wait_for_function(lesson, timeout=WAIT_MS)
    viewer.wait_for_function(lesson, timeout=WAIT_MS)
    taught = presenter.evaluate("window.backpropLive.explain.lesson")
    assert taught["cost_after"] < taught["cost_before"]
    assert viewer.evaluate("window.backpropLive.explain.lesson.cost_after") == taught["cost_after"]
    for page in (presenter, viewer):
        assert "went from" in check_caption(page, STEPS)
    presenter.screenshot(path=screenshot_dir / "explain-7-applied-presenter.png")
    viewer.screenshot(path=screenshot_dir / "explain-7-applied.png")

    # Back to the start with the next test digit: the viewer follows the new example.
    presenter.click("[data-xp-after]")
    at_step(presenter, 1)
    at_step(viewer, 1)
    new_example = presenter.evaluate("window.backpropLive.explain.key")
    assert new_example != presenter_example
    viewer.wait_for_function(
        "(key) => window.backpropLive.explain.key === key", arg=new_example, timeout=WAIT_MS
    )

    presenter.keyboard.press("Escape")
    viewer.wait_for_function("() => !window.backpropLive.explain.active", timeout=WAIT_MS)
    assert presenter.locator(".board").is_visible() and viewer.locator(".board").is_visible()
    assert not viewer.locator("[data-explain]").is_visible()

    # The viewer never sent an example: it fetched each trace the presenter showed by its key.
    assert viewer_asked and all(method == "GET" for method, _ in viewer_asked), viewer_asked
    fetched = {path.removeprefix("/api/explain/") for _, path in viewer_asked}
    assert {presenter_example, new_example} <= fetched


def test_the_drawing_on_the_pad_can_be_explained(
    server: LiveServer, open_page: Any, screenshot_dir: Path
) -> None:
    server.fresh_run()
    presenter = open_page(f"{server.url}/?token={server.token}", width=1024, height=768)
    presenter.wait_for_function("() => window.backpropLive.state.runId !== null", timeout=WAIT_MS)
    draw_digit(presenter)
    presenter.wait_for_function("() => window.backpropLive.state.drawing !== null", timeout=WAIT_MS)
    presenter.keyboard.press("e")
    at_step(presenter, 1)
    presenter.click("[data-xp-drawing]")
    assert "label" in presenter.inner_text("[data-xp-message]"), "it asks for the label"
    presenter.fill("[data-xp-label]", "7")
    presenter.click("[data-xp-drawing]")
    presenter.wait_for_function(
        "() => window.backpropLive.explain.trace?.example.index === null", timeout=WAIT_MS
    )
    at_step(presenter, 1)
    presenter.keyboard.press("ArrowRight")
    at_step(presenter, 2)
    assert presenter.evaluate("window.backpropLive.explain.trace.label") == 7
    check_caption(presenter, 2)
    presenter.screenshot(path=screenshot_dir / "explain-drawing.png")

    # One keyboard: while the help is open, the arrows neither step nor train; Esc closes the
    # help first, then explain mode.
    presenter.keyboard.press("?")
    assert presenter.locator("[data-help]").is_visible()
    presenter.keyboard.press("ArrowRight")
    presenter.keyboard.press("Escape")
    assert not presenter.locator("[data-help]").is_visible()
    presenter.wait_for_timeout(500)  # time for a request the arrow must not have sent
    at_step(presenter, 2)
    assert server.http.get("/api/run").json()["batch"] == 0
    presenter.keyboard.press("Escape")
    presenter.wait_for_function("() => !window.backpropLive.explain.active", timeout=WAIT_MS)
    presenter.keyboard.press("ArrowRight")  # now the arrow trains one mini-batch again
    deadline = time.monotonic() + 30
    while server.http.get("/api/run").json()["batch"] != 1:
        assert time.monotonic() < deadline, "→ outside explain mode trains one mini-batch"
        time.sleep(0.1)
