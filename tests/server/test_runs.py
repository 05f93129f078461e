"""The run library over HTTP, on a real server and a real SQLite file: runs listed with their
curves and evaluations, kept across a restart, replayed epoch by epoch, resumed, renamed,
deleted and exported; `train --record` runs listed beside the server's own."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from live_server import LiveServer, connect

SUMMARY_FIELDS = {
    "id",
    "name",
    "config",
    "summary",
    "dataset",
    "status",
    "created_at",
    "updated_at",
    "examples_seen",
    "seconds",
    "epochs_done",
    "test_accuracy",
    "test_cost",
    "live",
    "race",
}
SMALL = {"hidden": [8], "batch_size": 500, "epochs": 2}  # 16 mini-batches per epoch
PER_EPOCH = 16
MODEL_FIELDS = ("layer_sizes", "activation", "loss", "weights", "biases")


def train_to_the_end(server: LiveServer, **config: Any) -> dict[str, Any]:
    """A fresh run with ``config``, trained at full speed until it finishes and its last
    mini-batches are in the library: GET /api/run."""
    server.fresh_run(**{**SMALL, **config})
    server.ok("PATCH", "/api/run", json={"speed": None})
    return finish(server)


def new_run(server: LiveServer) -> dict[str, Any]:
    """A fresh idle run, once the library holds it (it commits a moment after the trainer
    queues it)."""
    run = server.fresh_run(**SMALL)
    deadline = time.monotonic() + 30
    while run["id"] not in listed(server):
        assert time.monotonic() < deadline, "the new run never reached the library"
        time.sleep(0.05)
    return run


def finish(server: LiveServer) -> dict[str, Any]:
    server.ok("POST", "/api/run/start")
    deadline = time.monotonic() + 60
    while (run := server.http.get("/api/run").json())["status"] != "finished":
        assert time.monotonic() < deadline, run
        time.sleep(0.05)
    # The library commits what the trainer queues a fraction of a second later.
    while listed(server).get(run["id"], {}).get("examples_seen", -1) < run["examples_seen"]:
        assert time.monotonic() < deadline, "the library never caught up with the run"
        time.sleep(0.05)
    return run


def listed(server: LiveServer) -> dict[str, dict[str, Any]]:
    response = server.http.get("/api/runs")
    assert response.status_code == 200, response.text
    return {run["id"]: run for run in response.json()["runs"]}


def detail(server: LiveServer, run_id: str, **params: Any) -> dict[str, Any]:
    response = server.http.get(f"/api/runs/{run_id}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_two_runs_are_listed_with_their_curves_and_kept_across_a_restart(
    server_factory: Any, tmp_path: Path
) -> None:
    first_server: LiveServer = server_factory(tmp_path / "state")
    first = train_to_the_end(first_server)
    second = train_to_the_end(first_server, hidden=[12], activation="relu", lr=0.5)
    runs = listed(first_server)
    ids = list(runs)
    assert ids.index(second["id"]) < ids.index(first["id"])  # newest first
    for run in (first, second):
        entry = runs[run["id"]]
        assert set(entry) == SUMMARY_FIELDS
        assert (entry["status"], entry["epochs_done"]) == ("finished", 2)
        assert entry["examples_seen"] == run["examples_seen"] == 2 * 8000
        assert entry["test_accuracy"] == run["metrics"]["test_accuracy"]
        assert entry["config"] == run["config"] and entry["dataset"] == "sample"
        assert entry["live"] is (run is second)
    assert runs[second["id"]]["name"] == "784-12-10 relu · SGD η=0.5 · batch 500"
    assert runs[second["id"]]["summary"] == runs[second["id"]]["name"]
    before = {run["id"]: detail(first_server, run["id"]) for run in (first, second)}
    for run_detail in before.values():
        assert [evaluation["epoch"] for evaluation in run_detail["evals"]] == [1, 2]
        assert run_detail["evals"][-1]["accuracy"] == run_detail["test_accuracy"]
        assert run_detail["costs"]["batch"] == list(range(2 * PER_EPOCH))
        assert run_detail["epochs"] == [0, 1, 2]
    first_server.stop()

    second_server: LiveServer = server_factory(tmp_path / "state")
    after = listed(second_server)
    for run in (first, second):
        # The live run was saved again on the way out: its updated_at may have moved on.
        moved = {"live": None, "updated_at": None} if run is second else {"live": None}
        assert {**after[run["id"]], **moved} == {**runs[run["id"]], **moved}
        assert {**detail(second_server, run["id"]), **moved} == {**before[run["id"]], **moved}
    assert second_server.http.get("/api/run").json()["id"] == second["id"]


def test_the_cost_curve_is_averaged_down_to_the_points_asked_for(server: LiveServer) -> None:
    run = train_to_the_end(server)
    every = detail(server, run["id"])["costs"]
    assert every["stride"] == 1 and len(every["cost"]) == 2 * PER_EPOCH
    batches = [row for row in csv_rows(export(server, run["id"])) if row["kind"] == "batch"]
    costs = np.array([float(row["cost"]) for row in batches])
    examples = np.array([int(row["examples_seen"]) for row in batches])
    np.testing.assert_allclose(every["cost"], costs, rtol=1e-4)
    five = detail(server, run["id"], points=5)["costs"]
    assert five["stride"] == 7 and five["batch"] == [0, 7, 14, 21, 28]
    for i, start in enumerate(five["batch"]):
        stretch = slice(start, start + 7)
        assert five["cost"][i] == pytest.approx(costs[stretch].mean(), rel=1e-4)
        assert five["examples_seen"][i] == round(examples[stretch].mean())
    refused = server.http.get(f"/api/runs/{run['id']}", params={"points": 0})
    assert refused.status_code == 422 and refused.json()["message"].startswith("points")


def test_every_stored_epoch_can_be_replayed(server: LiveServer) -> None:
    run = train_to_the_end(server)
    models = []
    for epoch in (0, 1, 2):
        response = server.http.get(f"/api/runs/{run['id']}/epochs/{epoch}/model")
        assert response.status_code == 200, response.text
        models.append(response.json())
    final = server.http.get("/api/model").json()
    assert {field: models[2][field] for field in MODEL_FIELDS} == final
    assert models[0]["weights"] != models[1]["weights"] != models[2]["weights"]
    for epoch, model in enumerate(models):
        assert (model["run"], model["epoch"]) == (run["id"], epoch)
        assert [len(layer) for layer in model["activations"]] == model["layer_sizes"][1:]
        assert model["probe"]["label"] == 2 and len(model["probe"]["pixels"]) > 0
    missing = server.http.get(f"/api/runs/{run['id']}/epochs/3/model")
    assert missing.status_code == 404
    assert "epoch 3" in missing.json()["detail"] and "0, 1, 2" in missing.json()["detail"]
    beyond = server.http.get(f"/api/runs/{run['id']}/epochs/{10**30}/model")
    assert beyond.status_code == 422 and beyond.json()["message"].startswith("epoch")


def test_a_run_resumed_at_epoch_1_continues_from_those_weights(server: LiveServer) -> None:
    run = train_to_the_end(server, epochs=3)
    recorded = detail(server, run["id"])
    epoch_1 = server.http.get(f"/api/runs/{run['id']}/epochs/1/model").json()

    async def resume_while_watching() -> dict[str, Any]:
        stream = await connect(server)
        async with stream.connection:
            server.ok("POST", f"/api/runs/{run['id']}/resume", json={"epoch": 1})
            # A run that goes back in time reaches open pages as a fresh hello.
            frame = await stream.until(
                lambda frame: frame["type"] == "hello" and frame["run"]["batch"] == PER_EPOCH
            )
            return frame["run"]

    shown = asyncio.run(resume_while_watching())  # every open page is told
    resumed = server.http.get("/api/run").json()
    for state in (shown, resumed):
        assert (state["id"], state["status"]) == (run["id"], "paused")
        assert (state["epoch"], state["batch"]) == (1, PER_EPOCH)
        assert state["metrics"]["test_accuracy"] == recorded["evals"][0]["accuracy"]
    model = server.http.get("/api/model").json()
    assert model == {field: epoch_1[field] for field in MODEL_FIELDS}
    after = detail(server, run["id"])
    assert after["evals"] == recorded["evals"][:1]
    assert (after["epochs"], after["epochs_done"]) == ([0, 1], 1)
    assert after["costs"]["cost"] == recorded["costs"]["cost"][:PER_EPOCH]

    hello = asyncio.run(first_frame(server))
    assert hello["history"]["next_batch"] == PER_EPOCH  # late joiners see it as resumed
    assert hello["run"]["batch"] == PER_EPOCH

    finish(server)  # the same shuffles from the same weights give the same scores
    scores = [(e["epoch"], e["accuracy"], e["cost"]) for e in recorded["evals"]]
    again = detail(server, run["id"])["evals"]
    assert [(e["epoch"], e["accuracy"], e["cost"]) for e in again] == scores


async def first_frame(server: LiveServer) -> dict[str, Any]:
    stream = await connect(server)
    await stream.connection.close()
    return stream.frames[0]


def test_renaming_and_deleting(server: LiveServer) -> None:
    old = train_to_the_end(server)
    live = new_run(server)
    renamed = server.ok("PATCH", f"/api/runs/{old['id']}", json={"name": " Tuesday's\n net "})
    assert renamed["name"] == "Tuesday's net"
    assert renamed["summary"] == "784-8-10 sigmoid · SGD η=3 · batch 500"
    assert listed(server)[old["id"]]["name"] == "Tuesday's net"

    refused = server.control("DELETE", f"/api/runs/{live['id']}")
    assert refused.status_code == 409 and "live run" in refused.json()["detail"]
    assert live["id"] in listed(server)
    assert server.ok("DELETE", f"/api/runs/{old['id']}") == {"deleted": old["id"]}
    assert old["id"] not in listed(server)
    for path in (f"/api/runs/{old['id']}", f"/api/runs/{old['id']}/epochs/0/model"):
        assert server.http.get(path).status_code == 404
    assert server.http.get("/api/run").json()["id"] == live["id"]


BAD_REQUESTS = [
    ("PATCH", "name", {"json": {"name": "   "}}),
    ("PATCH", "name", {"json": {"name": "x" * 201}}),
    ("PATCH", "name", {"json": {"name": 7}}),
    ("PATCH", "colour", {"json": {"name": "a", "colour": "blue"}}),
    ("POST", "epoch", {"json": {"epoch": -1}}),
    ("POST", "epoch", {"json": {"epoch": "1"}}),
    ("POST", "epoch", {"json": {"epoch": 9}}),
    ("POST", "epoch", {"json": {"epoch": 10**30}}),
]


@pytest.mark.parametrize(("method", "field", "kwargs"), BAD_REQUESTS)
def test_bad_values_are_refused_naming_the_field(
    server: LiveServer, method: str, field: str, kwargs: dict[str, Any]
) -> None:
    run = new_run(server)
    path = f"/api/runs/{run['id']}" + ("/resume" if method == "POST" else "")
    response = server.control(method, path, **kwargs)
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body.get("message") or body["detail"]).startswith(field)
    after = listed(server)[run["id"]]
    assert after["name"] == "784-8-10 sigmoid · SGD η=3 · batch 500"
    assert server.http.get("/api/run").json()["id"] == run["id"]


def presenter_requests(run_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("PATCH", f"/api/runs/{run_id}", {"json": {"name": "mine now"}}),
        ("DELETE", f"/api/runs/{run_id}", {}),
        ("POST", f"/api/runs/{run_id}/resume", {"json": {"epoch": 0}}),
    ]


def test_only_the_presenter_changes_the_library(server: LiveServer) -> None:
    old = train_to_the_end(server)
    live = new_run(server)
    before = listed(server)
    for method, path, kwargs in presenter_requests(old["id"]):
        missing = server.http.request(method, path, **kwargs)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        wrong = server.http.request(method, path, headers={"Authorization": "Bearer x"}, **kwargs)
        assert wrong.status_code == 403
    assert {run_id: run["name"] for run_id, run in listed(server).items()} == {
        run_id: run["name"] for run_id, run in before.items()
    }
    assert server.http.get("/api/run").json()["id"] == live["id"]
    reads = [
        "/api/runs",
        f"/api/runs/{old['id']}",
        f"/api/runs/{old['id']}/epochs/1/model",
        f"/api/runs/{old['id']}/export.csv",
        "/api/runs/export.csv",
        "/runs",
    ]
    for path in reads:
        assert server.http.get(path).status_code == 200, path


def test_an_unknown_run_is_404_everywhere(server: LiveServer) -> None:
    for method, path, kwargs in presenter_requests("no-such-run"):
        response = server.control(method, path, **kwargs)
        assert response.status_code == 404, (method, path)
        assert "no run no-such-run" in response.json()["detail"]
    for path in ("", "/epochs/0/model", "/export.csv"):
        assert server.http.get(f"/api/runs/no-such-run{path}").status_code == 404


def export(server: LiveServer, run_id: str) -> str:
    response = server.http.get(f"/api/runs/{run_id}/export.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f"backprop-live-run-{run_id}.csv" in response.headers["content-disposition"]
    return response.text


def test_the_csv_exports_parse(server: LiveServer) -> None:
    run = train_to_the_end(server, hidden=[16, 16])
    rows = csv_rows(export(server, run["id"]))
    batches = [row for row in rows if row["kind"] == "batch"]
    evaluations = [row for row in rows if row["kind"] == "evaluation"]
    assert len(rows) == len(batches) + len(evaluations)
    assert [int(row["batch"]) for row in batches] == list(range(2 * PER_EPOCH))
    assert [int(row["examples_seen"]) for row in batches][-1] == 2 * 8000
    seconds = [float(row["seconds"]) for row in batches]
    assert seconds == sorted(seconds) and seconds[-1] > 0
    recorded = detail(server, run["id"])["evals"]
    assert [
        (int(row["epoch"]), int(row["examples_seen"]), float(row["accuracy"]))
        for row in evaluations
    ] == [(e["epoch"], e["examples_seen"], e["accuracy"]) for e in recorded]

    response = server.http.get("/api/runs/export.csv")
    assert response.headers["content-type"].startswith("text/csv")
    table = {row["id"]: row for row in csv_rows(response.text)}
    assert set(table) == set(listed(server))
    mine = table[run["id"]]
    assert (mine["hidden"], mine["batch_size"], mine["status"]) == ("16,16", "500", "finished")
    assert float(mine["test_accuracy"]) == run["metrics"]["test_accuracy"]


def test_runs_recorded_by_train_appear_in_the_servers_list(
    server_factory: Any, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    server: LiveServer = server_factory(state)
    env = {key: value for key, value in os.environ.items() if key != "BACKPROP_LIVE_DATA"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")  # the built-in sample, as the server
    command = [sys.executable, "-m", "server.cli", "train", "--hidden", "10", "--epochs", "2"]
    command += ["--batch-size", "500", "--record", "--name", "from the terminal"]
    command += ["--state-dir", str(state), "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    cli_run = listed(server)[json.loads(done.stdout)["run"]]
    assert cli_run["name"] == "from the terminal"
    assert (cli_run["status"], cli_run["dataset"], cli_run["epochs_done"]) == (
        "finished",
        "sample",
        2,
    )
    assert not cli_run["live"] and cli_run["config"]["hidden"] == [10]
    run_detail = detail(server, cli_run["id"])
    assert run_detail["epochs"] == [0, 1, 2]
    assert len(run_detail["costs"]["cost"]) == 2 * PER_EPOCH
    resumed = server.ok("POST", f"/api/runs/{cli_run['id']}/resume", json={"epoch": 1})
    assert (resumed["id"], resumed["batch"]) == (cli_run["id"], PER_EPOCH)
