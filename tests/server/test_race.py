"""The race (issue 12) on a real server: lanes trained side by side, at a pace, from one seed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from live_server import NO_LIMITS, LiveServer, Stream, connect, start_server

from server.presets import PRESETS


def race(*batch_sizes: int, pace: str = "examples", **config: Any) -> dict[str, Any]:
    """3Blue1Brown's network at η = 3, one lane per batch size."""
    return {
        "lanes": [
            {"label": f"batch {size}", "config": {"batch_size": size, "lr": 3.0, **config}}
            for size in batch_sizes
        ],
        "pace": pace,
    }


@pytest.fixture(scope="module")
def mnist_server(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Iterator[LiveServer]:
    """A server that trains on the full MNIST."""
    tmp = tmp_path_factory.mktemp("mnist-race")
    live = start_server(tmp / "state", tmp, flags=(*NO_LIMITS, "--data-dir", str(mnist_dir)))
    yield live
    live.stop()


def get_race(server: LiveServer) -> dict[str, Any]:
    response = server.http.get("/api/race")
    assert response.status_code == 200, response.text
    return response.json()


def run_until(
    server: LiveServer, done: Callable[[dict[str, Any]], bool], check: Callable[..., None]
) -> dict[str, Any]:
    """Start the race, ``check`` it as reported while it runs until ``done``, pause it; the
    race as it paused."""
    server.ok("POST", "/api/run/start")
    while not done(body := get_race(server)):
        assert body["status"] == "running", body
        check(body)
    server.ok("POST", "/api/run/pause")
    body = get_race(server)
    check(body)
    return body


def step_round(server: LiveServer) -> dict[str, Any]:
    """Step the race (the rest of the round under way runs, then it pauses); the race once
    paused. The step answers at once: the round can take seconds."""
    stepped = server.ok("POST", "/api/run/step")
    assert stepped["status"] in ("running", "paused", "finished"), stepped
    while (body := get_race(server))["stepping"]:
        assert body["status"] == "running", body
    return body


def least(race_now: dict[str, Any], key: str) -> Any:
    return min(lane[key] for lane in race_now["lanes"])


def lane_batches(stream: Stream, lane: int) -> list[int]:
    return [
        frame["first_batch"] + i
        for frame in stream.frames
        if frame["type"] == "batches" and frame["lane"] == lane
        for i in range(len(frame["costs"]))
    ]


async def read_until(stream: Stream, steps: list[int]) -> None:
    """Read until every lane's batches up to ``steps`` (per lane, a count) have arrived."""
    while any(
        max(lane_batches(stream, lane), default=-1) < count - 1 for lane, count in enumerate(steps)
    ):
        await stream.next()


def test_an_examples_race_keeps_lanes_level_and_smaller_batches_learn_more_per_example(
    mnist_server: LiveServer,
) -> None:
    server = mnist_server
    body = server.ok("POST", "/api/race", json=race(10, 100, 1000, epochs=30))
    assert body["status"] == "paused" and body["pace"] == "examples"
    server.ok("PATCH", "/api/run", json={"speed": None})
    runs = [lane["run"] for lane in body["lanes"]]

    def level(race_now: dict[str, Any]) -> None:
        seen = [lane["examples_seen"] for lane in race_now["lanes"]]
        assert max(seen) - min(seen) <= 1000, seen  # within one batch of the largest lane

    async def scenario() -> tuple[Stream, list[int]]:
        stream = await connect(server)
        hello_race = stream.frames[0]["race"]
        assert [lane["run"] for lane in hello_race["lanes"]] == runs
        paused = await asyncio.to_thread(
            run_until, server, lambda now: least(now, "examples_seen") >= 20_000, level
        )
        steps = [lane["steps"] for lane in paused["lanes"]]
        await read_until(stream, steps)
        return stream, steps

    stream, paused_steps = asyncio.run(scenario())
    after = step_round(server)  # the rest of the round: equal examples
    assert after["status"] == "paused"
    seen = {lane["examples_seen"] for lane in after["lanes"]}
    assert len(seen) == 1 and seen.pop() == after["rounds"] * 1000
    batch_10, batch_1000 = after["lanes"][0], after["lanes"][2]
    assert batch_10["cost"] < batch_1000["cost"], after  # the lesson

    lane_frames = [frame for frame in stream.frames if frame["type"] in ("batches", "snapshot")]
    for lane in range(3):  # every batch of every lane, once, in order, as that lane's run
        trained = lane_batches(stream, lane)
        assert trained == list(range(paused_steps[lane])) and trained
        assert {frame["run"] for frame in lane_frames if frame["lane"] == lane} == {runs[lane]}

    # One seed: the three lanes started from the same weights, as the library recorded them.
    models = [server.http.get(f"/api/runs/{run}/epochs/0/model").json() for run in runs]
    assert models[0]["weights"] == models[1]["weights"] == models[2]["weights"]
    assert models[0]["biases"] == models[2]["biases"]


def test_a_time_race_gives_every_lane_as_many_training_seconds(mnist_server: LiveServer) -> None:
    server = mnist_server
    server.ok("POST", "/api/race", json=race(10, 100, 1000, pace="time", epochs=30))
    server.ok("PATCH", "/api/run", json={"speed": None})
    after = run_until(server, lambda now: least(now, "seconds") >= 2.5, lambda now: None)
    # Apart by at most the one mini-batch the last lane to step took (a busy machine's
    # preemption included): tens of milliseconds against 2.5 s.
    seconds = [lane["seconds"] for lane in after["lanes"]]
    assert max(seconds) - min(seconds) <= 0.1 * max(seconds), seconds
    examples = [lane["examples_seen"] for lane in after["lanes"]]
    assert examples[2] > examples[0], examples  # a big batch does more examples a second


def test_bad_races_are_refused_naming_the_lane_and_the_field(server: LiveServer) -> None:
    lane = {"label": "batch 10", "config": {"batch_size": 10}}
    refusals = [
        ("lanes", {"lanes": [lane]}),
        ("lanes", {"lanes": [lane] * 5}),
        ("lanes.2.config.lr", {"lanes": [lane, lane, {"label": "η", "config": {"lr": -1}}]}),
        ("lanes.1.config.hidden", {"lanes": [lane, {"label": "x", "config": {"hidden": []}}]}),
        ("lanes.1.label", {"lanes": [lane, {"label": " ", "config": {}}]}),
        ("lanes.0.config", {"lanes": [{"label": "no config"}, lane]}),
        ("pace", {"lanes": [lane, lane], "pace": "distance"}),
    ]
    for field, body in refusals:
        response = server.control("POST", "/api/race", json=body)
        assert response.status_code == 422, (field, response.text)
        assert response.json()["message"].startswith(f"{field}:"), response.json()
    assert server.http.post("/api/race", json=race(1, 10)).status_code == 401
    assert server.http.get("/api/race").status_code == 404
    assert server.control("DELETE", "/api/race").status_code == 404


def test_ending_a_race_brings_back_the_run_before_it_and_keeps_the_lanes(
    server: LiveServer,
) -> None:
    before = server.fresh_run(hidden=[8], batch_size=500)
    for _ in range(3):
        server.ok("POST", "/api/run/step")
    body = server.ok("POST", "/api/race", json=race(100, 500, hidden=[8]))
    assert server.ok("GET", "/api/run")["id"] == body["lanes"][0]["run"]  # lane 0 speaks
    step_round(server)
    again = server.ok("POST", "/api/race", json=race(100, 1000, hidden=[8]))  # replaces it
    assert again["id"] != body["id"]

    back = server.ok("DELETE", "/api/race")
    assert (back["id"], back["status"], back["batch"]) == (before["id"], "paused", 3)
    assert server.http.get("/api/race").status_code == 404
    for old in (body, again):
        lanes = server.http.get("/api/runs", params={"race": old["id"]}).json()["runs"]
        assert [lane["id"] for lane in lanes] == [lane["run"] for lane in old["lanes"]]
        assert [lane["race"] for lane in lanes] == [
            {"id": old["id"], "lane": i, "label": lane["label"]}
            for i, lane in enumerate(old["lanes"])
        ]
    first_lanes = server.http.get("/api/runs", params={"race": body["id"]}).json()["runs"]
    assert [lane["examples_seen"] for lane in first_lanes] == [500, 500]  # the step was saved
    listed = {run["id"]: run for run in server.http.get("/api/runs").json()["runs"]}
    assert listed[before["id"]]["race"] is None and listed[before["id"]]["live"]


def test_run_controls_drive_the_race(server: LiveServer) -> None:
    server.fresh_run(hidden=[8])
    body = server.ok("POST", "/api/race", json=race(100, 250, hidden=[8], epochs=5))
    stepped = step_round(server)  # one round: the largest batch's examples
    assert [lane["examples_seen"] for lane in stepped["lanes"]] == [300, 250]
    assert stepped["status"] == "paused" and stepped["rounds"] == 1
    server.ok("PATCH", "/api/run", json={"speed": 2.5})
    assert get_race(server)["speed"] == 2.5
    refused = server.control("PATCH", "/api/run", json={"lr": 1.0})
    assert refused.status_code == 409 and "race" in refused.json()["detail"]
    reset = server.ok("POST", "/api/run/reset")
    after = get_race(server)
    assert after["id"] != body["id"] and reset["id"] == after["lanes"][0]["run"]
    assert [lane["examples_seen"] for lane in after["lanes"]] == [0, 0]
    assert [lane["label"] for lane in after["lanes"]] == ["batch 100", "batch 250"]
    single = server.ok("POST", "/api/run", json={"hidden": [8], "epochs": 1})
    assert server.http.get("/api/race").status_code == 404
    assert server.ok("GET", "/api/run")["id"] == single["id"]


def test_a_diverging_lane_stops_and_the_others_go_on(server: LiveServer) -> None:
    wild = {"hidden": [32] * 4, "activation": "relu", "loss": "cross-entropy", "lr": 100.0}
    body = {
        "lanes": [
            {"label": "calm", "config": {"hidden": [8], "batch_size": 50, "epochs": 1000}},
            {"label": "wild", "config": {**wild, "batch_size": 10, "epochs": 20}},
        ]
    }
    server.ok("POST", "/api/race", json=body)
    server.ok("PATCH", "/api/run", json={"speed": None})
    diverged = run_until(
        server,
        lambda now: now["lanes"][1]["status"] == "diverged" and now["lanes"][0]["steps"] > 50,
        lambda now: None,
    )
    calm, wild_lane = diverged["lanes"]
    assert "learning rate" in wild_lane["message"]
    assert calm["status"] == "paused" and calm["examples_seen"] > wild_lane["examples_seen"]
    server.ok("DELETE", "/api/race")


def test_hello_and_status_carry_the_race(server: LiveServer) -> None:
    server.fresh_run(hidden=[8])
    body = server.ok("POST", "/api/race", json=race(200, 500, hidden=[8], epochs=5))
    for _ in range(2):
        step_round(server)

    async def scenario() -> None:
        stream = await connect(server)
        hello = stream.frames[0]
        lanes = hello["race"]["lanes"]
        # Each lane's chart so far; a hello may be made up to a tick before the broadcaster has
        # the latest reports, and then the batches frames carry on exactly where it ends.
        histories = [lane["history"] for lane in lanes]
        assert [history["first_batch"] for history in histories] == [0, 0]
        assert [len(history["costs"]) for history in histories] == [
            history["next_batch"] for history in histories
        ]
        assert [lane["model"]["layer_sizes"] for lane in lanes] == [[784, 8, 10]] * 2
        assert hello["run"]["id"] == body["lanes"][0]["run"]
        latest = {}  # every lane's latest snapshot follows the hello
        while latest != {0: 5, 1: 2}:
            frame = await stream.next()
            if frame["type"] == "snapshot":
                latest[frame["lane"]] = frame["batch"]
        server.ok("POST", "/api/run/step")
        status = await stream.until(
            lambda f: f["type"] == "status" and f["race"]["lanes"][1]["steps"] == 3
        )
        assert status["race"]["id"] == body["id"]
        assert [lane["steps"] for lane in status["race"]["lanes"]] == [8, 3]
        await read_until(stream, [8, 3])
        next_batches = [history["next_batch"] for history in histories]
        assert lane_batches(stream, 0) == list(range(next_batches[0], 8))
        assert lane_batches(stream, 1) == list(range(next_batches[1], 3))
        batches = [f for f in stream.frames if f["type"] == "batches" and f["lane"] == 1]
        assert batches[0]["run"] == body["lanes"][1]["run"] and batches[0]["seconds"] > 0
        await stream.connection.close()

    asyncio.run(scenario())
    server.ok("DELETE", "/api/race")


def test_presets_are_races_the_server_takes(server: LiveServer) -> None:
    presets = server.http.get("/api/race/presets").json()
    assert [preset["key"] for preset in presets] == [
        "batch-size",
        "learning-rate",
        "activation",
        "cost",
    ]
    assert presets == PRESETS
    for preset in presets:
        started = server.ok("POST", "/api/race", json=preset["race"])
        assert [lane["label"] for lane in started["lanes"]] == [
            lane["label"] for lane in preset["race"]["lanes"]
        ]
    server.ok("DELETE", "/api/race")


def test_a_checkpoint_or_a_resumed_run_ends_the_race_and_teach_waits_for_its_end(
    server: LiveServer,
) -> None:
    before = server.fresh_run(hidden=[8])
    body = server.ok("POST", "/api/race", json=race(100, 200, hidden=[8]))
    lane_0 = server.http.get("/api/checkpoint")  # lane 0's network, as classify reads it
    assert (
        lane_0.status_code == 200
        and body["lanes"][0]["run"] in lane_0.headers["content-disposition"]
    )
    refused = server.control("POST", "/api/teach", json={"index": 3, "lr": 0.5})
    assert refused.status_code == 409 and "race" in refused.json()["detail"]

    loaded = server.ok("POST", "/api/checkpoint", content=lane_0.content)
    assert server.http.get("/api/race").status_code == 404
    assert loaded["config"]["batch_size"] == 100 and loaded["id"] != body["lanes"][0]["run"]

    server.ok("POST", "/api/race", json=race(100, 200, hidden=[8]))
    resumed = server.ok("POST", f"/api/runs/{before['id']}/resume")
    assert server.http.get("/api/race").status_code == 404
    assert (resumed["id"], resumed["status"]) == (before["id"], "paused")


def test_a_step_runs_its_round_in_the_open_and_a_pause_stops_it(server: LiveServer) -> None:
    """A round of a batch-1 lane beside a batch-5000 one is 5,000 mini-batches: the step
    answers at once, the race is seen running, and a pause stops it mid-round."""
    server.fresh_run(hidden=[8])
    server.ok("POST", "/api/race", json=race(1, 5000, hidden=[8], epochs=5))
    server.ok("PATCH", "/api/run", json={"speed": 0.5})  # a round's own pace does not hold it
    stepped = server.ok("POST", "/api/run/step")
    assert stepped["status"] == "running"
    now = get_race(server)
    assert now["stepping"] and now["rounds"] == 1
    while get_race(server)["lanes"][0]["examples_seen"] < 200:
        pass  # the batch-1 lane is under way
    paused = server.ok("POST", "/api/run/pause")
    assert paused["status"] == "paused"
    after = get_race(server)
    assert not after["stepping"] and after["status"] == "paused"
    assert 200 <= after["lanes"][0]["examples_seen"] < 5000, after  # stopped mid-round
    finished = step_round(server)  # the rest of the same round
    assert [lane["examples_seen"] for lane in finished["lanes"]] == [5000, 5000]
    assert finished["rounds"] == 1
    server.ok("DELETE", "/api/race")
