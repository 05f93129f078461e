"""`backprop-live train` and the top-level command, run as a user runs them: in a subprocess."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.checkpoint import load_checkpoint
from engine.data.mnist import SAMPLE_NOTE, load_dataset
from engine.training import TrainConfig, Trainer
from server.cli import main
from server.cli.train import add_train_arguments, config_from_args, run_train

REQUIRED_FIELDS = {
    "test_accuracy": float,
    "test_cost": float,
    "epochs": int,
    "seconds": float,
    "examples_per_second": int,
    "dataset": str,
    "train_size": int,
    "test_size": int,
    "config": dict,
    "accuracies": list,
}


@pytest.fixture
def empty_home(tmp_path: Path) -> dict[str, str]:
    """The environment of a fresh machine: empty home and cache, no data, no network."""
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "BACKPROP_LIVE_DATA"}
    unreachable = "http://127.0.0.1:9"  # the discard port: any download attempt fails fast
    env |= {
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "HTTP_PROXY": unreachable,
        "HTTPS_PROXY": unreachable,
        "http_proxy": unreachable,
        "https_proxy": unreachable,
    }
    return env


def console_script() -> str:
    """The installed `backprop-live` next to this Python, as `pip install` puts it."""
    found = Path(sys.executable).with_name("backprop-live")
    script = str(found) if found.exists() else shutil.which("backprop-live")
    assert script, "the console script backprop-live is not installed (pip install -e .)"
    return script


def run(args: list[str], env: dict[str, str], script: bool = False, cwd: Path | None = None):
    command = [console_script()] if script else [sys.executable, "-m", "server.cli"]
    return subprocess.run(
        [*command, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def single_json(stdout: str) -> dict:
    """The one JSON object stdout must consist of."""
    result = json.loads(stdout)
    assert isinstance(result, dict)
    return result


def assert_report(result: dict) -> None:
    for name, kind in REQUIRED_FIELDS.items():
        assert isinstance(result[name], kind), f"{name}: {result.get(name)!r}"
    assert 0 <= result["test_accuracy"] <= 1
    assert result["seconds"] > 0 and result["examples_per_second"] > 0
    assert len(result["accuracies"]) == result["epochs"] == result["config"]["epochs"]
    assert result["accuracies"][-1] == result["test_accuracy"]


def test_train_json_on_the_built_in_sample(empty_home, tmp_path):
    completed = run(["train", "--epochs", "1", "--json"], empty_home, cwd=tmp_path)

    assert completed.returncode == 0, completed.stderr
    result = single_json(completed.stdout)
    assert_report(result)
    assert (result["dataset"], result["train_size"], result["test_size"]) == ("sample", 8000, 2000)
    assert result["examples_seen"] == 8000
    assert result["config"] == TrainConfig(epochs=1).to_dict()
    assert SAMPLE_NOTE in completed.stderr
    assert "epoch 1/1" in completed.stderr  # the progress bar
    assert list(tmp_path.iterdir()) == [tmp_path / "home"]  # nothing downloaded or cached


def test_acceptance_ten_epochs_reach_85_percent_on_the_sample(empty_home, tmp_path):
    """The issue's criterion: fresh machine, no network, defaults, 10 epochs: >= 85%."""
    completed = run(["train", "--epochs", "10", "--json"], empty_home, script=True, cwd=tmp_path)

    assert completed.returncode == 0, completed.stderr
    result = single_json(completed.stdout)
    assert_report(result)
    assert result["dataset"] == "sample" and result["test_size"] == 2000
    assert result["test_accuracy"] >= 0.85, result["accuracies"]


def test_human_summary_and_saved_checkpoint(empty_home, tmp_path, no_user_data):
    path = tmp_path / "model.npz"
    flags = ["--hidden", "20", "--activation", "relu", "--loss", "cross-entropy"]
    flags += ["--optimizer", "adam", "--lr", "0.003", "--batch-size", "50", "--epochs", "2"]
    completed = run(["train", *flags, "--save", str(path)], empty_home, cwd=tmp_path)

    assert completed.returncode == 0, completed.stderr
    assert "test accuracy" in completed.stdout and f"saved to {path}" in completed.stdout
    checkpoint = load_checkpoint(path)
    expected = TrainConfig(
        hidden=(20,),
        activation="relu",
        loss="cross-entropy",
        optimizer="adam",
        lr=0.003,
        batch_size=50,
        epochs=2,
    )
    assert checkpoint.config == expected
    assert checkpoint.progress.epoch == 2 and checkpoint.progress.batch_index == 320
    assert checkpoint.metadata["dataset"] == "sample"
    # The saved weights are the ones that scored what the summary printed.
    accuracy = Trainer(expected, load_dataset(), checkpoint.network).evaluate().accuracy
    assert f"test accuracy {accuracy:.2%}" in completed.stdout


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--hidden", "16,x"], "--hidden"),
        (["--hidden", "16,16,16,16,16"], "--hidden"),
        (["--activation", "softsign"], "--activation"),
        (["--lr", "-1"], "--lr"),
        (["--epochs"], "--epochs"),
        (["--weight-decay", "2"], "--weight-decay"),
        (["--save", "/nonexistent-directory/model.npz"], "--save"),
        (["--save", "."], "--save"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_invalid_arguments_exit_2_naming_the_flag(empty_home, tmp_path, flags, named):
    completed = run(["train", *flags], empty_home, cwd=tmp_path)

    assert completed.returncode == 2
    assert named in completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""


def test_unusable_data_exits_1_with_a_message(empty_home, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    completed = run(["train", "--data-dir", str(empty), "--json"], empty_home, cwd=tmp_path)

    assert completed.returncode == 1
    assert "train-images-idx3-ubyte.gz" in completed.stderr and str(empty) in completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""


def test_divergence_exits_1_with_a_message(empty_home, tmp_path):
    # Decay of 1 at lr 100 multiplies every weight by about -99 each step: overflow soon.
    flags = ["--lr", "100", "--weight-decay", "1", "--json"]
    completed = run(["train", *flags], empty_home, cwd=tmp_path)

    assert completed.returncode == 1
    assert "diverged" in completed.stderr and "Warning" not in completed.stderr
    result = single_json(completed.stdout)
    assert result["status"] == "diverged" and result["epochs"] == 0


def test_full_mnist_from_data_dir(empty_home, tmp_path, mnist_dir):
    flags = ["--data-dir", str(mnist_dir), "--epochs", "1", "--hidden", "16", "--json"]
    completed = run(["train", *flags], empty_home, cwd=tmp_path)

    assert completed.returncode == 0, completed.stderr
    result = single_json(completed.stdout)
    assert_report(result)
    assert (result["dataset"], result["train_size"], result["test_size"]) == ("mnist", 60000, 10000)
    assert SAMPLE_NOTE not in completed.stderr


def test_top_level_help_lists_the_subcommands(empty_home, tmp_path):
    completed = run(["--help"], empty_home, script=True, cwd=tmp_path)

    assert completed.returncode == 0
    for name in ("train", "data"):
        assert f"    {name}  " in completed.stdout


def test_data_subcommand_is_wired(empty_home, tmp_path, mnist_dir):
    """`data` is server.cli.data's; here only that the main command reaches it."""
    on_sample = run(["data"], empty_home, script=True, cwd=tmp_path)
    on_mnist = run(["data", "--data-dir", str(mnist_dir)], empty_home, script=True, cwd=tmp_path)

    assert on_sample.returncode == 0, on_sample.stderr
    assert "dataset: sample" in on_sample.stdout
    assert on_mnist.returncode == 0, on_mnist.stderr
    assert "dataset: mnist" in on_mnist.stdout


def test_train_does_not_load_the_web_stack(empty_home, tmp_path):
    probe = (
        "import sys; from server.cli import main; code = main(['train', '--epochs', '1']); "
        "print(sorted({'fastapi', 'uvicorn', 'starlette'} & set(sys.modules)), code)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], env=empty_home, cwd=tmp_path, capture_output=True, text=True
    )
    assert completed.stdout.strip().splitlines()[-1] == "[] 0", completed.stderr


def test_main_returns_exit_codes_instead_of_exiting(capsys):
    assert main(["train", "--batch-size", "0"]) == 2
    assert main(["no-such-command"]) == 2
    assert main([]) == 2
    assert "--batch-size" in capsys.readouterr().err


def test_every_config_field_is_a_flag():
    """New TrainConfig fields become flags without touching the CLI."""
    import argparse

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    help_text = parser.format_help()
    for config_field in dataclasses.fields(TrainConfig):
        assert "--" + config_field.name.replace("_", "-") in help_text

    args = parser.parse_args(["--hidden", "32,8", "--weight-decay", "0.001", "--seed", "5"])
    assert config_from_args(args) == TrainConfig(hidden=(32, 8), weight_decay=0.001, seed=5)
    assert config_from_args(parser.parse_args([])) == TrainConfig()


def test_flags_show_and_keep_the_configs_limits(capsys):
    """A flag's help states the field's limits, and a value beyond them is refused naming the
    flag and the limits."""
    import argparse

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    help_text = " ".join(parser.format_help().split())
    for line in (
        "--lr FLOAT learning rate η: a number above 0 and at most 100 (default: 3.0)",
        "--hidden N,N units in each hidden layer: 1 to 4 whole numbers, each from 1 to 512",
        "--activation {sigmoid,relu,tanh} activation function",
    ):
        assert line in help_text

    assert run_train(parser.parse_args(["--lr", "100.5"])) == 2
    assert "argument --lr: must be a number above 0 and at most 100" in capsys.readouterr().err
    assert run_train(parser.parse_args(["--seed", str(2**32)])) == 2
    assert "argument --seed: must be a whole number from 0 to 4294967295" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--optimizer", "rmsprop"])
