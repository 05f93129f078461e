"""`backprop-live train --record` and `backprop-live runs`, run as a user runs them: in
subprocesses, on the built-in sample, against a real library file."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.store import DB_FILE, Store

TRAIN = ["train", "--hidden", "10", "--batch-size", "500", "--epochs", "2"]
PER_EPOCH = 16


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Only the built-in sample, and a home of its own (the default state dir lives there)."""
    environment = {key: value for key, value in os.environ.items() if key != "BACKPROP_LIVE_DATA"}
    environment["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    environment["XDG_DATA_HOME"] = str(tmp_path / "data")
    return environment


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "server.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def record(state: Path, env: dict[str, str], *flags: str) -> str:
    """Train a small run into the library at ``state``; its id."""
    done = cli([*TRAIN, "--record", "--state-dir", str(state), "--json", *flags], env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["run"]


def test_a_recorded_run_keeps_every_batch_evaluation_and_epoch(
    tmp_path: Path, env: dict[str, str]
) -> None:
    state = tmp_path / "state"
    done = cli([*TRAIN, "--record", "--state-dir", str(state), "--name", "before class"], env)
    assert done.returncode == 0, done.stderr
    assert "recorded as run " in done.stdout and str(state / DB_FILE) in done.stdout
    with Store(state) as store:
        (run,) = store.runs()
        assert (run.name, run.status, run.dataset) == ("before class", "finished", "sample")
        assert (run.epochs_done, run.examples_seen) == (2, 2 * 8000)
        assert run.config["hidden"] == [10] and run.seconds > 0
        costs = store.costs(run.id)
        assert costs.batch.tolist() == list(range(2 * PER_EPOCH))
        assert [row.epoch for row in store.evaluations(run.id)] == [1, 2]
        assert store.weight_epochs(run.id) == [0, 1, 2]
        saved = store.state(run.id)
        assert saved is not None and saved[0] == 2 * PER_EPOCH


def test_record_uses_the_servers_default_state_dir(tmp_path: Path, env: dict[str, str]) -> None:
    done = cli([*TRAIN, "--record"], env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "backprop-live" / DB_FILE).is_file()
    listed = cli(["runs"], env)
    assert listed.returncode == 0 and "784-10-10 sigmoid · SGD η=3 · batch 500" in listed.stdout


def test_an_interrupted_recording_is_kept_paused_where_it_stopped(
    tmp_path: Path, env: dict[str, str]
) -> None:
    state = tmp_path / "state"
    command = [sys.executable, "-m", "server.cli", "train", "--batch-size", "10", "--epochs", "50"]
    command += ["--record", "--state-dir", str(state)]
    child = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    for line in child.stderr:  # the progress bar of the second epoch: the first is stored
        if "epoch 2/50" in line:
            break
    child.send_signal(signal.SIGINT)
    _, rest = child.communicate(timeout=60)
    assert child.returncode == 130, rest
    with Store(state) as store:
        (run,) = store.runs()
        saved = store.state(run.id)
        assert run.status == "paused" and run.epochs_done >= 1
        assert saved is not None and saved[0] == run.examples_seen // 10 >= 800
        assert store.weight_epochs(run.id)[:2] == [0, 1]


@pytest.mark.parametrize("flag", [["--name", "x"], ["--state-dir", "somewhere"]])
def test_library_flags_need_record(env: dict[str, str], flag: list[str]) -> None:
    done = cli([*TRAIN, *flag], env)
    assert done.returncode == 2
    assert f"argument {flag[0]}: only with --record" in done.stderr


def test_an_unusable_library_is_refused_before_training(
    tmp_path: Path, env: dict[str, str]
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    done = cli([*TRAIN, "--record", "--state-dir", str(tmp_path / "a-file" / "state")], env)
    assert done.returncode == 1
    assert "cannot record the run: cannot create the state directory" in done.stderr
    assert "epoch 1/2" not in done.stderr, "nothing was trained"


def test_listing_showing_exporting_and_removing(tmp_path: Path, env: dict[str, str]) -> None:
    state = tmp_path / "state"
    first = record(state, env, "--name", "first")
    second = record(state, env, "--name", "second", "--activation", "relu")
    flag = ["--state-dir", str(state)]

    table = cli(["runs", *flag], env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "NAME",
        "DATA",
        "STATUS",
        "EPOCHS",
        "ACCURACY",
        "TRAINED",
        "CREATED",
    ]
    assert [line.split()[0] for line in lines[1:3]] == [second, first]  # newest first
    assert "2 runs in" in table.stdout

    shown = cli(["runs", "show", first[:6], *flag], env)  # a prefix is enough
    assert shown.returncode == 0, shown.stderr
    assert f"run:      {first}" in shown.stdout and "name:     first" in shown.stdout
    assert "stored for epochs 0-2" in shown.stdout
    assert f"over {2 * PER_EPOCH} mini-batches" in shown.stdout
    epochs = [line.split()[0] for line in shown.stdout.split("epoch  ")[1].splitlines()[1:]]
    assert epochs == ["1", "2"]

    exported = json.loads(cli(["runs", "export", first, *flag], env).stdout)
    assert exported["id"] == first and exported["costs"]["stride"] == 1
    assert exported["costs"]["batch"] == list(range(2 * PER_EPOCH))
    assert [evaluation["epoch"] for evaluation in exported["evals"]] == [1, 2]
    path = tmp_path / "first.csv"
    assert cli(["runs", "export", first, "--csv", str(path), *flag], env).returncode == 0
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [row["kind"] for row in rows].count("batch") == 2 * PER_EPOCH
    assert [row["epoch"] for row in rows if row["kind"] == "evaluation"] == ["1", "2"]
    to_stdout = cli(["runs", "export", first, "--csv", "-", *flag], env).stdout
    assert to_stdout == path.read_text()

    removed = cli(["runs", "rm", second, *flag], env)
    assert removed.returncode == 0 and f"deleted run {second} (second)" in removed.stdout
    with Store(state) as store:
        assert [run.id for run in store.runs()] == [first]


def test_refusals_say_why(tmp_path: Path, env: dict[str, str]) -> None:
    state = tmp_path / "state"
    flag = ["--state-dir", str(state)]
    empty = cli(["runs", *flag], env)
    assert empty.returncode == 0 and "no run library in" in empty.stdout
    assert not state.exists(), "reading a library that is not there creates none"
    assert cli(["runs", "show", "abc", *flag], env).returncode == 1

    recorded = record(state, env)
    with Store(state) as store:
        for twin in ("abc1", "abc2"):
            store.create_run(twin, twin, {}, "sample", 1.0)
        # As a server writes the run it trains: "running", a moment ago.
        store.create_run("training-now", "live", {}, "sample", time.time(), status="running")
    for args, message in [
        (["show", "nothing-like-it"], "no run 'nothing-like-it'"),
        (["rm", "abc"], "'abc' could be any of 2 runs (abc1, abc2): give more of it"),
        (["rm", "training-now"], "it is a server's live run"),
        (["export", recorded, "--csv", str(tmp_path / "no" / "such" / "dir.csv")], "cannot write"),
    ]:
        done = cli(["runs", *args, *flag], env)
        assert done.returncode == 1, args
        assert message in done.stderr, done.stderr
    assert cli(["runs", "frobnicate", *flag], env).returncode == 2
