"""The race (issue 12) in a real chromium against a real server: the presenter starts the
batch-size preset from the page, every lane draws its line, named at its end, its network and
its results; a viewer's page switches to the race and back, and one that joins late gets every
lane's history; presenting, the race fits 1920×1080 and 1024×768 and → steps one round; the
runs page lays a recorded race's lanes over each other."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from live_server import LiveServer
from test_visualiser import INK, LAYOUT_PROBLEMS

pytestmark = pytest.mark.browser

WAIT_MS = 60_000
PRESET = "batch-size"

RACE_ON = "() => window.backpropLive.race.on"
RACE_OFF = "() => !window.backpropLive.race.on"
# Per lane as the page knows it: label, steps, examples seen, points on each x axis.
PAGE_LANES = """() => {
  const race = window.backpropLive.race;
  return race.lanesState.map((lane, i) => ({
    label: race.body.lanes[i].label,
    steps: lane.steps,
    examples: lane.examplesSeen,
    accuracy: lane.accuracy,
    lastExample: race.chart.lanes[i].curve.byExamples.lastX,
    points: race.chart.lanes[i].curve.byExamples.length,
    secondPoints: race.chart.lanes[i].curve.byMilliseconds.length,
  }));
}"""
# What each lane's card shows: label and results.
CARDS = """() => [...document.querySelectorAll('[data-race-lanes] .lane')].map((card) => ({
  label: card.querySelector('.lane-label').textContent,
  accuracy: card.querySelector('[data-result=accuracy]').textContent,
  speed: card.querySelector('[data-result=speed]').textContent,
  steps: card.querySelector('[data-result=steps]').textContent,
}))"""


def presenter_url(server: LiveServer, query: str = "") -> str:
    return f"{server.url}/?token={server.token}{query}"


def preset(server: LiveServer, key: str) -> dict[str, Any]:
    presets = server.http.get("/api/race/presets").json()
    return next(p for p in presets if p["key"] == key)


def wait_until(predicate: Any, what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def server_race(server: LiveServer) -> dict[str, Any]:
    response = server.http.get("/api/race")
    assert response.status_code == 200, response.text
    return response.json()


def train_a_round_or_two(server: LiveServer, rounds: int) -> dict[str, Any]:
    """Let the race run until it has done `rounds` rounds, then pause it; the race as then."""
    server.ok("POST", "/api/run/start")
    wait_until(lambda: server_race(server)["rounds"] >= rounds, f"the race ran {rounds} rounds")
    server.ok("POST", "/api/run/pause")
    return wait_until(
        lambda: (race := server_race(server))["status"] == "paused" and race,
        "the race paused",
    )


def paused_race(server: LiveServer, rounds: int = 2) -> dict[str, Any]:
    """A fresh batch-size race, trained `rounds` rounds at full speed, paused."""
    server.ok("POST", "/api/race", json=preset(server, PRESET)["race"])
    server.ok("PATCH", "/api/run", json={"speed": None})
    return train_a_round_or_two(server, rounds)


def wait_for_page_to_match(page: Any, race: dict[str, Any]) -> None:
    """The page shows every lane's steps as the server counts them (the race is paused)."""
    page.wait_for_function(
        "(steps) => { const race = window.backpropLive.race;"
        " return race.on && race.lanesState.every((lane, i) => lane.steps === steps[i]); }",
        arg=[lane["steps"] for lane in race["lanes"]],
        timeout=WAIT_MS,
    )
    page.wait_for_timeout(400)  # the throttled results and a frame or two to draw them


def test_presenter_races_the_batch_sizes_and_every_viewer_sees_it(
    server: LiveServer, open_page: Any, screenshot_dir: Path
) -> None:
    presets = server.http.get("/api/race/presets").json()
    viewer = open_page(server.url + "/")
    presenter = open_page(presenter_url(server))
    for page in (viewer, presenter):
        page.wait_for_function("() => window.backpropLive.state.runId !== null", timeout=WAIT_MS)
    presenter.wait_for_selector("[data-race-preset]", timeout=WAIT_MS)
    buttons = presenter.locator("[data-race-preset]").all_inner_texts()
    assert buttons == [p["title"] for p in presets]
    assert viewer.locator("[data-race-preset]").count() == 0, "presets are the presenter's"

    presenter.click(f'[data-race-preset="{PRESET}"]')
    for page in (presenter, viewer):
        page.wait_for_function(RACE_ON, timeout=WAIT_MS)
        assert page.locator("[data-race]").is_visible()
        assert not page.locator(".board").is_visible()
    labels = [lane["label"] for lane in server_race(server)["lanes"]]
    assert labels == [lane["label"] for lane in preset(server, PRESET)["race"]["lanes"]]
    for page in (presenter, viewer):
        assert [card["label"] for card in page.evaluate(CARDS)] == labels
    assert not viewer.locator('[data-race-action="start-pause"]').is_visible()

    server.ok("PATCH", "/api/run", json={"speed": None})
    presenter.click('[data-race-action="start-pause"]')
    viewer.wait_for_function(
        "() => document.querySelector('[data-part=status]').textContent === 'training'",
        timeout=WAIT_MS,
    )
    wait_until(lambda: server_race(server)["rounds"] >= 2, "the race ran two rounds")
    presenter.click('[data-race-action="start-pause"]')
    race = wait_until(
        lambda: (r := server_race(server))["status"] == "paused" and r, "the race paused"
    )

    for page in (presenter, viewer):
        wait_for_page_to_match(page, race)
        lanes = page.evaluate(PAGE_LANES)
        for shown, lane in zip(lanes, race["lanes"]):
            assert shown["examples"] == lane["examples_seen"]
            assert shown["lastExample"] == lane["examples_seen"], "the line reaches the lane"
            assert shown["points"] > 0 and shown["secondPoints"] > 0
        steps = [lane["steps"] for lane in race["lanes"]]
        assert steps == sorted(steps, reverse=True) and len(set(steps)) == len(steps), (
            "a smaller batch takes more steps for the same examples"
        )
        assert_chart_names_every_lane(page, labels)
        assert_cards_show_results(page, race)

    late = open_page(server.url + "/")
    wait_for_page_to_match(late, race)
    for shown, lane in zip(late.evaluate(PAGE_LANES), race["lanes"]):
        assert shown["points"] > 0, "a late joiner gets the lane's history"
        assert shown["lastExample"] == lane["examples_seen"], "history x values are exact"
        assert shown["accuracy"] == lane["test_accuracy"]
    assert_chart_names_every_lane(late, labels)

    presenter.select_option("[data-race-x]", "seconds")
    presenter.check('[data-race-log="logX"]')
    presenter.check('[data-race-log="logCost"]')
    presenter.wait_for_timeout(300)
    assert_chart_names_every_lane(presenter, labels)
    presenter.mouse.move(5, 5)
    presenter.screenshot(path=screenshot_dir / "race-presenter.png")
    viewer.keyboard.press("x")
    viewer.wait_for_timeout(300)
    assert viewer.input_value("[data-race-x]") == "seconds"
    viewer.screenshot(path=screenshot_dir / "race-viewer.png")

    presenter.click('[data-race-action="end"]')
    for page in (presenter, viewer, late):
        page.wait_for_function(RACE_OFF, timeout=WAIT_MS)
        assert page.locator(".board").is_visible()
        assert not page.locator("[data-race]").is_visible()
    assert server.http.get("/api/race").status_code == 404


def assert_chart_names_every_lane(page: Any, labels: list[str]) -> None:
    """One line per lane with ink, and each lane's name at its end, none over another."""
    page.wait_for_timeout(200)
    drawn = page.evaluate("window.backpropLive.race.chart.drawnLabels")
    assert [label["text"].split("  ")[0] for label in drawn] == labels
    size = page.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('[data-race-chart]')).fontSize)"
    )
    ys = sorted(label["y"] for label in drawn)
    assert all(b - a >= size for a, b in itertools.pairwise(ys)), f"labels overlap: {drawn}"
    width = page.evaluate("document.querySelector('[data-race-chart]').clientWidth")
    assert all(label["x"] >= 0 and label["x"] + label["width"] <= width for label in drawn)
    assert len({label["colour"] for label in drawn}) == len(labels)
    assert page.evaluate(INK, "[data-race-chart]") > 0.01


# Lane results that reach past their card's edge (a number too wide for a narrow projector).
RESULTS_OUTSIDE_CARDS = """() => [...document.querySelectorAll('[data-race-lanes] .lane')]
.flatMap((card) => {
  const edge = card.getBoundingClientRect();
  return [...card.querySelectorAll('dt, dd')]
    .filter((el) => { const r = el.getBoundingClientRect();
      return r.left < edge.left || r.right > edge.right; })
    .map((el) => `${card.dataset.lane}: ${el.textContent}`);
})"""


def shown_count(text: str) -> float:
    """A count as a card shows it: "8,279", "48.2k" or "1.2M"."""
    scale = {"k": 1e3, "M": 1e6}.get(text[-1], 1.0)
    return float(text.rstrip("kM").replace(",", "")) * scale


def assert_cards_show_results(page: Any, race: dict[str, Any]) -> None:
    cards = page.evaluate(CARDS)
    for card, lane in zip(cards, race["lanes"]):
        shown_percent = float(card["accuracy"].removesuffix("%"))
        assert abs(shown_percent - lane["test_accuracy"] * 100) <= 0.05 + 1e-9, (card, lane)
        assert shown_count(card["steps"]) == pytest.approx(lane["steps"], rel=0.005)
        speed = lane["examples_seen"] / lane["seconds"]
        assert shown_count(card["speed"]) == pytest.approx(speed, rel=0.01, abs=1.0), (card, lane)
    for index in range(len(cards)):
        ink = page.evaluate(INK, f'[data-race-lanes] .lane[data-lane="{index}"] canvas')
        assert ink > 0.05, f"lane {index}'s network is drawn"


@pytest.mark.parametrize(
    "width,height,query,key", [(1920, 1080, "&present", None), (1024, 768, "", "p")]
)
def test_presenting_a_race_fills_the_screen_and_steps_a_round(
    server: LiveServer,
    open_page: Any,
    screenshot_dir: Path,
    width: int,
    height: int,
    query: str,
    key: str | None,
) -> None:
    race = paused_race(server)
    page = open_page(presenter_url(server, query), width=width, height=height)
    if key:
        page.keyboard.press(key)
    wait_for_page_to_match(page, race)
    assert page.evaluate("document.documentElement.classList.contains('present')")
    page.screenshot(path=screenshot_dir / f"race-present-{width}x{height}.png")
    assert page.evaluate(LAYOUT_PROBLEMS) == []
    assert page.evaluate(RESULTS_OUTSIDE_CARDS) == []
    assert_chart_names_every_lane(page, [lane["label"] for lane in race["lanes"]])

    # A step trains the rest of the round under way, if any, else a whole new round.
    size = round_size(server, race)
    under_way = any(lane["examples_seen"] < race["rounds"] * size for lane in race["lanes"])
    rounds = race["rounds"] if under_way else race["rounds"] + 1
    page.keyboard.press("ArrowRight")
    stepped = wait_until(lambda: round_done(server, rounds, size), "→ trained one round")
    wait_for_page_to_match(page, stepped)
    # A whole round (thousands of batch-1 steps) runs on after the step's answer: the page
    # shows it under way until the race pauses again.
    page.evaluate(
        "() => { window.stepsSeen = []; window.backpropLive.socket.on('status', (frame) =>"
        " window.stepsSeen.push([frame.race.stepping,"
        " document.documentElement.classList.contains('stepping')])); }"
    )
    page.click('[data-race-action="step"]')
    again = wait_until(lambda: round_done(server, rounds + 1, size), "Step a round: the next")
    wait_for_page_to_match(page, again)
    seen = page.evaluate("window.stepsSeen")
    assert [True, True] in seen, f"the page showed the step under way: {seen}"
    assert seen[-1] == [False, False], seen


def round_size(server: LiveServer, race: dict[str, Any]) -> int:
    """Examples in a round of pace "examples": the largest lane batch, at most an epoch."""
    train_size = server.http.get("/api/run").json()["dataset"]["train_size"]
    return min(max(lane["config"]["batch_size"] for lane in race["lanes"]), train_size)


def round_done(server: LiveServer, rounds: int, size: int) -> dict[str, Any] | None:
    """The race, if it is paused after `rounds` rounds with every lane at the round's end."""
    race = server_race(server)
    reached = all(lane["examples_seen"] >= rounds * size for lane in race["lanes"])
    return race if race["rounds"] == rounds and reached and race["status"] == "paused" else None


def test_a_diverged_lane_says_so_while_the_others_go_on_and_reset_starts_again(
    server: LiveServer, open_page: Any, screenshot_dir: Path
) -> None:
    steady = {"hidden": [16], "lr": 3.0, "batch_size": 10}
    # As the live page's diverged run: deep ReLU layers and a far too large η.
    wild = {"hidden": [32, 32, 32, 32], "activation": "relu", "loss": "cross-entropy"}
    wild |= {"lr": 100, "batch_size": 10}
    lanes = [{"label": "steady", "config": steady}, {"label": "η = 100", "config": wild}]
    server.ok("POST", "/api/race", json={"lanes": lanes})
    server.ok("PATCH", "/api/run", json={"speed": None})
    page = open_page(server.url + "/")
    page.wait_for_function(RACE_ON, timeout=WAIT_MS)
    server.ok("POST", "/api/run/start")
    race = wait_until(
        lambda: (
            (r := server_race(server))["lanes"][1]["status"] == "diverged"
            and r["lanes"][0]["examples_seen"] > r["lanes"][1]["examples_seen"]
            and r
        ),
        "the wild lane diverged and the steady one went on",
    )
    server.ok("POST", "/api/run/pause")
    pill = page.locator('[data-race-lanes] .lane[data-lane="1"] .lane-status')
    pill.wait_for(timeout=WAIT_MS)
    assert pill.inner_text() == "diverged"
    assert pill.get_attribute("title") == race["lanes"][1]["message"]
    assert page.locator('[data-race-lanes] .lane[data-lane="0"] .lane-status').is_hidden()
    assert not page.locator("[data-alert]").is_visible(), "one lane's divergence stops no race"
    page.wait_for_function(
        "() => window.backpropLive.race.chart.drawnLabels.some((l) => l.text.endsWith('diverged'))",
        timeout=WAIT_MS,
    )
    page.screenshot(path=screenshot_dir / "race-diverged.png")

    server.ok("POST", "/api/run/reset")
    page.wait_for_function(
        "(id) => { const race = window.backpropLive.race;"
        " return race.on && race.body.id !== id && race.lanesState.every((l) => l.steps === 0)"
        " && race.chart.lanes.every((l) => l.curve.byExamples.length === 0); }",
        arg=race["id"],
        timeout=WAIT_MS,
    )
    assert page.locator(".lane-status").evaluate_all("(pills) => pills.every((p) => p.hidden)")


def test_runs_page_shows_a_race_and_lays_its_lanes_over_each_other(
    server: LiveServer, open_page: Any, screenshot_dir: Path
) -> None:
    race = paused_race(server)
    server.ok("DELETE", "/api/race")
    lanes = server.http.get("/api/runs", params={"race": race["id"]}).json()["runs"]
    assert sorted(run["race"]["lane"] for run in lanes) == list(range(len(race["lanes"])))
    page = open_page(f"{server.url}/runs?token={server.token}")
    first = race["lanes"][0]
    pill = page.locator(f'[data-rows] [data-id="{first["run"]}"] .race-pill')
    pill.wait_for(timeout=WAIT_MS)
    assert pill.inner_text() == "race · lane 1", "the lane's name holds its label"
    assert first["label"] in page.inner_text(f'[data-rows] [data-id="{first["run"]}"] .run-name')
    pill.click()
    page.wait_for_function(
        "(n) => document.querySelectorAll('[data-legend] li').length === n",
        arg=len(race["lanes"]),
        timeout=WAIT_MS,
    )
    ticked = page.evaluate(
        "() => [...document.querySelectorAll('[data-rows] input:checked')]"
        ".map((box) => box.closest('[data-id]').dataset.id)"
    )
    assert sorted(ticked) == sorted(lane["run"] for lane in race["lanes"])
    page.wait_for_timeout(300)
    assert page.evaluate(INK, "[data-cost-chart]") > 0.01
    page.screenshot(path=screenshot_dir / "runs-race.png")
