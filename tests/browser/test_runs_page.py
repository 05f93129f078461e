"""The runs page in a real chromium against a real server: two runs overlaid, one replayed epoch
by epoch, resumed by the presenter while a viewer's live page follows, renamed and deleted;
legible at 1920×1080 and 1024×768."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from live_server import LiveServer
from test_visualiser import INK, LAYOUT_PROBLEMS

pytestmark = pytest.mark.browser

WAIT_MS = 30_000
PER_EPOCH = 16  # mini-batches of 500 in an epoch of the built-in sample

# Every pixel of a canvas, to tell two drawings apart.
PIXELS = """(selector) => {
  const canvas = document.querySelector(selector);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let hash = 0;
  for (let i = 0; i < data.length; i += 7) hash = (hash * 31 + data[i]) | 0;
  return hash;
}"""


def trained_run(server: LiveServer, **config: Any) -> dict[str, Any]:
    """A run trained to its end at full speed, once the library holds all of it."""
    run = server.fresh_run(**{"hidden": [16], "batch_size": 500, "epochs": 3, **config})
    server.ok("PATCH", "/api/run", json={"speed": None})
    server.ok("POST", "/api/run/start")
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, "the run did not finish and reach the library"
        live = server.http.get("/api/run").json()
        listed = {r["id"]: r for r in server.http.get("/api/runs").json()["runs"]}
        if live["status"] == "finished" and listed.get(run["id"], {}).get("epochs_done") == 3:
            return live
        time.sleep(0.1)


@pytest.fixture(scope="module")
def two_runs(server: LiveServer) -> tuple[dict[str, Any], dict[str, Any]]:
    sigmoid = trained_run(server)
    relu = trained_run(
        server, hidden=[32], activation="relu", loss="cross-entropy", optimizer="adam", lr=0.003
    )
    server.ok("PATCH", f"/api/runs/{relu['id']}", json={"name": "ReLU and Adam"})
    return sigmoid, relu


def runs_url(server: LiveServer, query: str = "", presenter: bool = True) -> str:
    token = f"token={server.token}&" if presenter else ""
    return f"{server.url}/runs?{token}{query}"


def wait_for_rows(page: Any, count: int) -> None:
    page.wait_for_function(
        "(n) => document.querySelectorAll('[data-rows] > *').length >= n",
        arg=count,
        timeout=WAIT_MS,
    )


def wait_for_replay_of(page: Any, run_id: str, epoch: int) -> None:
    page.wait_for_function(
        "([id, epoch]) => { const r = window.backpropLive.replay;"
        " return r.shown?.run === id && r.shown.epoch === epoch && r.epoch === epoch"
        " && !r.dirty; }",
        arg=[run_id, epoch],
        timeout=WAIT_MS,
    )


def tick(page: Any, run_id: str) -> None:
    page.check(f'[data-rows] [data-id="{run_id}"] input[type="checkbox"]')


def test_two_runs_overlaid_and_one_replayed_epoch_by_epoch(
    server: LiveServer, two_runs: Any, open_page: Any, screenshot_dir: Path
) -> None:
    sigmoid, relu = two_runs
    page = open_page(runs_url(server))
    assert "token" not in page.url
    wait_for_rows(page, 2)
    blank_cost = page.evaluate(INK, "[data-cost-chart]")
    tick(page, sigmoid["id"])
    tick(page, relu["id"])
    page.wait_for_function(
        "() => document.querySelectorAll('[data-legend] li').length === 2", timeout=WAIT_MS
    )
    page.wait_for_timeout(300)  # a frame or two to draw
    legend = [item.split("\n") for item in page.locator("[data-legend] li").all_inner_texts()]
    assert [name for name, _ in legend] == [
        "784-16-10 sigmoid · SGD η=3 · batch 500",
        "ReLU and Adam",
    ]
    for (_, shown), run in zip(legend, (sigmoid, relu)):
        assert_percent(shown, run)
    assert page.evaluate(INK, "[data-cost-chart]") > blank_cost + 0.01
    assert page.evaluate(INK, "[data-accuracy-chart]") > 0.01
    colours = page.evaluate(
        "() => [...document.querySelectorAll('[data-rows] input:checked')]"
        ".map((box) => box.style.accentColor)"
    )
    assert len(set(colours)) == 2 and "" not in colours, "each ticked run has its own colour"
    assert f"compare={sigmoid['id']},{relu['id']}" in page.url
    page.check("[data-log-cost]")
    page.select_option("[data-x]", "seconds")
    page.wait_for_timeout(300)
    assert_laid_out(page)
    page.screenshot(path=screenshot_dir / "runs-compare.png")

    page.click(f'[data-rows] [data-id="{sigmoid["id"]}"] .run-name')
    wait_for_replay_of(page, sigmoid["id"], 3)
    label = page.inner_text("[data-epoch-label]")
    assert label.startswith("epoch 3 of 3 · ") and label.endswith(" right")
    assert_percent(label.split(" · ")[1].removesuffix(" right"), sigmoid)
    trained = page.evaluate(PIXELS, "[data-replay-network] canvas")
    assert page.evaluate(INK, "[data-replay-network] canvas") > 0.05
    page.focus("[data-epoch]")
    page.keyboard.press("Home")  # the scrubber, back to the random start
    wait_for_replay_of(page, sigmoid["id"], 0)
    assert page.inner_text("[data-epoch-label]") == "start · of 3 epochs"
    assert page.evaluate(PIXELS, "[data-replay-network] canvas") != trained, "other weights"
    page.keyboard.press("ArrowRight")
    wait_for_replay_of(page, sigmoid["id"], 1)
    readout = page.inner_text("[data-replay-network] [data-readout]")
    assert readout.startswith("showing: test digit #") and "network says" in readout
    page.screenshot(path=screenshot_dir / "runs-replay-epoch-1.png")

    page.click("[data-play]")
    wait_for_replay_of(page, sigmoid["id"], 3)  # played to the last epoch
    assert page.inner_text("[data-play]") == "▶ Play"


def assert_laid_out(page: Any) -> None:
    """No text outside the safe area, over other text or cut off; no page scroll."""
    page.mouse.move(5, 5)  # away from any panel heading, whose explanation shows on hover
    page.wait_for_timeout(200)
    problems = page.evaluate(LAYOUT_PROBLEMS)
    assert not problems, "\n".join(problems)


def assert_percent(shown: str, run: dict[str, Any]) -> None:
    """``shown`` is the run's test accuracy to one decimal, as in "89.4%"."""
    assert shown.endswith("%")
    assert abs(float(shown[:-1]) - run["metrics"]["test_accuracy"] * 100) <= 0.05 + 1e-9


@pytest.mark.parametrize("view", ["compare", "replay"])
def test_a_small_projector_shows_one_side_at_a_time(
    server: LiveServer, two_runs: Any, open_page: Any, screenshot_dir: Path, view: str
) -> None:
    sigmoid, relu = two_runs
    query = f"compare={sigmoid['id']},{relu['id']}&replay={relu['id']}"
    page = open_page(runs_url(server, query), width=1024, height=768)
    wait_for_rows(page, 2)
    page.click(f'[data-view-tab="{view}"]')
    wait_for_replay_of(page, relu["id"], 3)
    page.wait_for_function(
        "() => document.querySelectorAll('[data-legend] li').length === 2", timeout=WAIT_MS
    )
    page.wait_for_timeout(300)
    shown = page.evaluate(
        "() => ['compare', 'replay'].filter((name) =>"
        " document.querySelector(`[data-panel=${name}]`).checkVisibility())"
    )
    assert shown == [view]
    font = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert font >= 16, "large enough to read from the back of a room"
    assert_laid_out(page)
    page.screenshot(path=screenshot_dir / f"runs-1024x768-{view}.png")


def wait_for_live_page_at(viewer: Any, run_id: str, batches: int, evaluations: int) -> None:
    viewer.wait_for_function(
        "([id, n, evals]) => { const live = window.backpropLive;"
        " return live.state.runId === id && live.cost.nextBatch === n"
        " && live.cost.evaluations.length === evals; }",
        arg=[run_id, batches, evaluations],
        timeout=WAIT_MS,
    )


def resume_here(page: Any, run_id: str, epoch: int) -> None:
    """On the runs page showing ``run_id``: scrub to ``epoch`` and press Resume here."""
    page.focus("[data-epoch]")
    page.keyboard.press("End")
    for _ in range(page.evaluate("window.backpropLive.replay.run.epochs.length") - 1 - epoch):
        page.keyboard.press("ArrowLeft")
    wait_for_replay_of(page, run_id, epoch)
    page.click("[data-resume]")
    where = "its start" if epoch == 0 else f"the end of epoch {epoch}"
    page.wait_for_function(
        "(text) => document.querySelector('[data-notice]').textContent.includes(text)",
        arg=f"paused at {where}",
        timeout=WAIT_MS,
    )


def test_resume_here_and_the_live_page_follows(server: LiveServer, open_page: Any) -> None:
    old = trained_run(server)
    live = trained_run(server)
    viewer = open_page(server.url + "/")
    wait_for_live_page_at(viewer, live["id"], 3 * PER_EPOCH, 3)
    page = open_page(runs_url(server, f"replay={old['id']}"))
    wait_for_replay_of(page, old["id"], 3)

    resume_here(page, old["id"], 1)  # another run: the viewer's page starts that one's charts
    resumed = server.http.get("/api/run").json()
    assert (resumed["id"], resumed["batch"], resumed["status"]) == (old["id"], PER_EPOCH, "paused")
    wait_for_live_page_at(viewer, old["id"], PER_EPOCH, 1)
    wait_for_replay_of(page, old["id"], 1)  # the runs page's own list follows: epochs 0 and 1
    assert page.evaluate("window.backpropLive.replay.run.epochs") == [0, 1]

    resume_here(page, old["id"], 0)  # the same run, back to its start: the charts go back too
    assert server.http.get("/api/run").json()["batch"] == 0
    wait_for_live_page_at(viewer, old["id"], 0, 0)


def test_the_presenter_renames_and_deletes_and_a_viewer_cannot(
    server: LiveServer, open_page: Any
) -> None:
    old = trained_run(server, hidden=[10])
    server.fresh_run(hidden=[12])  # the live run is another one now
    viewer = open_page(runs_url(server, f"replay={old['id']}", presenter=False))
    wait_for_replay_of(viewer, old["id"], 3)
    assert not viewer.locator("[data-resume]").is_visible()
    assert not viewer.locator("[data-delete]").is_visible()

    page = open_page(runs_url(server, f"replay={old['id']}"))
    wait_for_replay_of(page, old["id"], 3)
    page.click("[data-rename]")
    page.fill("[data-replay-title] input", "Tuesday's first try")
    page.press("[data-replay-title] input", "Enter")
    row = f'[data-rows] [data-id="{old["id"]}"]'
    page.wait_for_function(
        "(row) => document.querySelector(`${row} .run-name`)?.textContent"
        ' === "Tuesday\'s first try"',
        arg=row,
        timeout=WAIT_MS,
    )
    names = {r["id"]: r["name"] for r in server.http.get("/api/runs").json()["runs"]}
    assert names[old["id"]] == "Tuesday's first try"

    page.click("[data-delete]")
    assert "Tuesday's first try" in page.inner_text("[data-confirm-text]")
    page.click('[data-confirm] button[value="delete"]')
    page.wait_for_function(
        "(row) => document.querySelector(row) === null", arg=row, timeout=WAIT_MS
    )
    assert server.http.get(f"/api/runs/{old['id']}").status_code == 404
    assert page.inner_text("[data-replay-title]") == "pick a run by its name"
