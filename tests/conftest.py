"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from needs import skip_or_fail

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO / ".." / "shared" / "data" / "mnist"
MNIST_GZ_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """A directory with the four official MNIST .gz files: $BACKPROP_LIVE_TEST_MNIST,
    else ../shared/data/mnist beside the repository.

    Developers without it get a skip that says why; CI (CI=true) always has it, so
    there its absence is a failure rather than a quietly smaller test run.
    """
    directory = Path(os.environ.get("BACKPROP_LIVE_TEST_MNIST") or SHARED_MNIST).resolve()
    missing = [name for name in MNIST_GZ_NAMES if not (directory / name).is_file()]
    if missing:
        reason = f"full MNIST not found in {directory} (missing {', '.join(missing)})"
        skip_or_fail(reason)
    return directory


@pytest.fixture
def no_user_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Hide the developer's own MNIST (BACKPROP_LIVE_DATA and the user cache).

    With it, `engine.data.mnist.load_dataset()` sees only the built-in sample, whatever is on
    the machine. Returns the (empty, not yet created) user cache directory to fill.
    """
    from engine.data.mnist import DATA_ENV, user_cache_dir

    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    cache = user_cache_dir()
    if not cache.is_relative_to(tmp_path):
        pytest.skip(f"platformdirs ignores XDG_CACHE_HOME on this system ({cache})")
    return cache
