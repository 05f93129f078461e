"""The live page and the draw page in a real chromium against a real server."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from live_server import LiveServer, start_server

pytestmark = pytest.mark.browser

WAIT_MS = 30_000

# Share of a canvas's pixels that are painted (alpha > 0): the panels clear to transparent.
INK = """(selector) => {
  const canvas = document.querySelector(selector);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
  return painted / (canvas.width * canvas.height);
}"""

# Every visible piece of text: inside the safe area (5% margins), not overlapping another,
# not clipped by its box; and the page itself does not scroll.
LAYOUT_PROBLEMS = """() => {
  const width = innerWidth, height = innerHeight, problems = [], boxes = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node; (node = walker.nextNode()); ) {
    const text = node.textContent.trim().slice(0, 40);
    const element = node.parentElement;
    const shown = element.checkVisibility({ opacityProperty: true, visibilityProperty: true });
    if (!text || !shown) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const r of range.getClientRects()) {
      if (r.width > 0 && r.height > 0) boxes.push({ text, r });
    }
    const display = getComputedStyle(element).display;
    if (display !== "inline" && element.scrollWidth > element.clientWidth + 1) {
      problems.push(`clipped: "${text}" (${element.scrollWidth} > ${element.clientWidth})`);
    }
  }
  for (const { text, r } of boxes) {
    if (r.left < width * 0.05 - 1 || r.right > width * 0.95 + 1 ||
        r.top < height * 0.05 - 1 || r.bottom > height * 0.95 + 1) {
      const where = [r.left, r.top, r.right, r.bottom].map(Math.round);
      problems.push(`outside the safe area: "${text}" at ${where}`);
    }
  }
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i].r, b = boxes[j].r;
      const dx = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const dy = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (dx > 1 && dy > 1) problems.push(`overlap: "${boxes[i].text}" and "${boxes[j].text}"`);
    }
  }
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth || root.scrollHeight > root.clientHeight) {
    problems.push(`the page scrolls: ${root.scrollWidth}x${root.scrollHeight}`);
  }
  return problems;
}"""


def presenter_url(server: LiveServer, query: str = "") -> str:
    return f"{server.url}/?token={server.token}{query}"


def wait_for_batches(page: Any, count: int) -> None:
    page.wait_for_function(
        "(n) => window.backpropLive.cost.raw.length >= n", arg=count, timeout=WAIT_MS
    )


def wait_for_snapshot_with_gradients(page: Any) -> None:
    page.wait_for_function("() => window.backpropLive.gradients.maps !== null", timeout=WAIT_MS)


def draw_digit(page: Any, selector: str = "[data-pad]") -> None:
    """A '7' with the mouse: a bar across the top, then a stroke down to the left."""
    box = page.locator(selector).bounding_box()
    x, y, side = box["x"], box["y"], box["width"]
    page.mouse.move(x + side * 0.25, y + side * 0.2)
    page.mouse.down()
    for t in range(1, 16):
        page.mouse.move(x + side * (0.25 + 0.5 * t / 15), y + side * 0.2)
    for t in range(1, 16):
        page.mouse.move(x + side * (0.75 - 0.3 * t / 15), y + side * (0.2 + 0.65 * t / 15))
    page.mouse.up()


def test_presenter_starts_a_run_and_every_panel_draws(
    server: LiveServer, open_page: Any, screenshot_dir: Path
) -> None:
    server.fresh_run()
    page = open_page(presenter_url(server))
    assert "token" not in page.url, "the token must leave the address bar"
    assert page.evaluate("sessionStorage.getItem('backprop-live-token')") == server.token
    page.wait_for_function("() => window.backpropLive.state.runId !== null", timeout=WAIT_MS)
    assert page.locator("[data-controls]").is_visible()
    idle_cost_ink = page.evaluate(INK, '[data-panel="cost"] canvas')
    idle_gradient_ink = page.evaluate(INK, "[data-lines]")

    page.click('[data-action="start-pause"]')
    wait_for_batches(page, 30)
    wait_for_snapshot_with_gradients(page)
    page.wait_for_timeout(300)  # a few animation frames to draw what arrived

    assert page.evaluate(INK, '[data-panel="cost"] canvas') > idle_cost_ink + 0.002
    assert page.evaluate(INK, "[data-lines]") > idle_gradient_ink + 0.002
    assert page.evaluate(INK, "[data-maps]") > 0.05
    assert page.evaluate(INK, '[data-panel="network"] canvas') > 0.05
    assert re.search(
        r"cost \d\.\d+ \(mean of last \d+ batches\)", page.inner_text(".cost .readout")
    )
    assert page.inner_text('[data-part="status"]') == "training"

    draw_digit(page)
    page.wait_for_function(
        "() => /network says \\d/.test(document.querySelector('[data-answer]').textContent)",
        timeout=WAIT_MS,
    )
    page.check("[data-probe-drawing]")
    page.wait_for_function(
        "() => document.querySelector('.network .readout').textContent"
        ".startsWith('showing: your drawing')",
        timeout=WAIT_MS,
    )

    page.hover('[data-panel="cost"] h2')
    assert page.locator('[data-panel="cost"] .explain').is_visible()
    page.mouse.move(5, 5)
    page.wait_for_timeout(300)
    page.screenshot(path=screenshot_dir / "presenter.png")


def test_viewer_has_no_controls_and_follows_the_presenter(
    server: LiveServer, open_page: Any, screenshot_dir: Path
) -> None:
    server.fresh_run()
    viewer = open_page(server.url + "/", device_scale_factor=2)
    presenter = open_page(presenter_url(server))
    for page in (viewer, presenter):
        page.wait_for_function("() => window.backpropLive.state.runId !== null", timeout=WAIT_MS)
    assert not viewer.locator("[data-controls]").is_visible()
    visible_controls = viewer.evaluate(
        "() => [...document.querySelectorAll('[data-controls] *, [data-alert-reset]')]"
        ".filter((el) => el.checkVisibility()).length"
    )
    assert visible_controls == 0
    viewer.keyboard.press("Space")  # a viewer's keys must not start the run
    viewer.wait_for_timeout(500)
    assert server.http.get("/api/run").json()["status"] == "idle"

    presenter.click('[data-action="start-pause"]')
    viewer.wait_for_function(
        "() => document.querySelector('[data-part=status]').textContent === 'training'",
        timeout=WAIT_MS,
    )
    wait_for_batches(viewer, 10)
    presenter.click('[data-action="start-pause"]')
    viewer.wait_for_function(
        "() => document.querySelector('[data-part=status]').textContent === 'paused'",
        timeout=WAIT_MS,
    )

    presenter.click('[data-preset="nielsen"]')
    viewer.wait_for_function(
        "() => document.querySelector('[data-part=network]').textContent.startsWith('784-30-10')",
        timeout=WAIT_MS,
    )
    assert viewer.evaluate("window.backpropLive.cost.raw.length") == 0, "a new run starts over"
    presenter.fill('input[name="lr"]', "0.5")
    presenter.press('input[name="lr"]', "Enter")
    viewer.wait_for_function(
        "() => document.querySelector('[data-part=network]').textContent.includes('η 0.5')",
        timeout=WAIT_MS,
    )
    presenter.click('[data-action="start-pause"]')
    wait_for_batches(viewer, 20)
    wait_for_snapshot_with_gradients(viewer)
    viewer.wait_for_timeout(300)
    crisp = viewer.evaluate(
        "() => [...document.querySelectorAll('.board canvas:not([data-pad]):not([data-seen])')]"
        ".filter((c) => c.clientWidth)"
        ".every((c) => c.width === Math.round(c.clientWidth * devicePixelRatio))"
    )
    assert crisp, "canvases are drawn at the screen's pixel density"
    viewer.screenshot(path=screenshot_dir / "viewer.png")


def test_drawing_on_a_phone_gets_an_answer(
    server: LiveServer, open_page: Any, screenshot_dir: Path
) -> None:
    page = open_page(
        server.url + "/draw", width=390, height=844, device_scale_factor=2, reduced_motion="reduce"
    )
    assert page.inner_text("[data-answer]") == "draw a digit"
    duration = "getComputedStyle(document.querySelector('.prob-fill')).transitionDuration"
    assert page.evaluate(duration) == "0s", "no animation for people who asked for less motion"
    draw_digit(page)
    page.wait_for_function(
        "() => /network says \\d \\(\\d+% sure\\)/.test("
        "document.querySelector('[data-answer]').textContent)",
        timeout=WAIT_MS,
    )
    values = page.locator(".prob-value").all_inner_texts()
    assert len(values) == 10 and all(re.fullmatch(r"\d+%", v) for v in values)
    seen = page.evaluate(
        """() => {
          const c = document.querySelector('[data-seen]');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let lit = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i] > 60) lit++;
          return lit;
        }"""
    )
    assert seen > 0, "the 28x28 image the network saw is shown"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=screenshot_dir / "draw-phone.png")


@pytest.mark.parametrize(
    "width,height,query,key", [(1024, 768, "", "p"), (1920, 1080, "?present", None)]
)
def test_presentation_mode_text_fits(
    server: LiveServer,
    open_page: Any,
    screenshot_dir: Path,
    width: int,
    height: int,
    query: str,
    key: str | None,
) -> None:
    if server.http.get("/api/run").json()["status"] != "running":
        server.fresh_run()
        server.ok("POST", "/api/run/start")
    page = open_page(f"{server.url}/{query}", width=width, height=height)
    page.wait_for_function("() => window.backpropLive.state.runId !== null", timeout=WAIT_MS)
    if key:
        page.keyboard.press(key)
    wait_for_batches(page, 5)
    wait_for_snapshot_with_gradients(page)
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.classList.contains('present')")
    assert page.evaluate(LAYOUT_PROBLEMS) == []
    body_px = float(page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)"))
    assert body_px >= 24 * height / 1080 - 0.5
    page.screenshot(path=screenshot_dir / f"present-{width}x{height}.png")


def test_the_page_reconnects_after_the_server_restarts(open_page: Any, tmp_path: Path) -> None:
    live = start_server(tmp_path / "state", tmp_path)
    try:
        page = open_page(live.url + "/")
        connection = "[data-part=connection]"
        page.wait_for_function(
            f"() => document.querySelector('{connection}').textContent === 'connected'",
            timeout=WAIT_MS,
        )
        live.stop()
        page.wait_for_function(
            f"() => document.querySelector('{connection}').textContent.startsWith('disconnected')",
            timeout=WAIT_MS,
        )
        time.sleep(0.5)
        page.evaluate("window.backpropLive.state.runId = null")
        live = start_server(tmp_path / "state", tmp_path, port=live.port)
        page.wait_for_function(
            f"() => document.querySelector('{connection}').textContent === 'connected'"
            " && window.backpropLive.state.runId !== null",
            timeout=WAIT_MS,
        )
    finally:
        live.stop()


def test_a_long_run_keeps_every_extreme_in_a_bounded_chart(
    server: LiveServer, open_page: Any
) -> None:
    """100,000 mini-batches fold into at most 2048 buckets, and no spike is averaged away."""
    page = open_page(server.url + "/draw")
    summary = page.evaluate(
        """async () => {
          const { BucketSeries, forEachColumn } = await import("/static/js/series.js");
          const series = new BucketSeries();
          for (let i = 0; i < 100000; i++) series.add(i, i === 54321 ? 9 : 1 + Math.sin(i) / 10);
          let columns = 0, highest = 0, points = 0;
          forEachColumn(series, (x) => (x / 100000) * 800, (px, min, max) => {
            columns++;
            highest = Math.max(highest, max);
          });
          series.forEach((x, min, max, mean, size) => { points += size; });
          return { buckets: series.count, length: series.length, columns, highest,
                   yMax: series.yMax, lastX: series.lastX, points };
        }"""
    )
    assert summary["length"] == 100_000 and summary["lastX"] == 99_999
    assert summary["buckets"] <= 2048
    assert summary["columns"] <= 801
    assert summary["highest"] == 9 == summary["yMax"]
    assert summary["points"] >= 100_000


def test_a_diverged_run_shows_why_and_the_presenter_can_reset_it(
    server: LiveServer, open_page: Any, screenshot_dir: Path
) -> None:
    deep = {"hidden": [32, 32, 32, 32], "activation": "relu", "loss": "cross-entropy"}
    server.fresh_run(**deep, lr=100, batch_size=10, epochs=5)
    presenter = open_page(presenter_url(server))
    viewer = open_page(server.url + "/")
    for page in (presenter, viewer):
        page.wait_for_function("() => window.backpropLive.state.runId !== null", timeout=WAIT_MS)
    for _ in range(200):
        run = server.ok("POST", "/api/run/step")
        if run["status"] == "diverged":
            break
    assert run["status"] == "diverged"
    for page in (presenter, viewer):
        page.wait_for_selector("[data-alert]", state="visible", timeout=WAIT_MS)
        assert "learning rate" in page.inner_text("[data-alert-text]")
        assert page.inner_text('[data-part="status"]') == "diverged"
    assert not viewer.locator("[data-alert-reset]").is_visible()
    presenter.screenshot(path=screenshot_dir / "diverged.png")

    presenter.click("[data-alert-reset]")
    presenter.wait_for_selector("[data-alert]", state="hidden", timeout=WAIT_MS)
    viewer.wait_for_selector("[data-alert]", state="hidden", timeout=WAIT_MS)
    assert server.http.get("/api/run").json()["status"] == "idle"
