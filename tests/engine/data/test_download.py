"""engine.data.download against mirrors served on 127.0.0.1 (this machine has no internet)."""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.data.download import MIRRORS_ENV, DownloadError, download_mnist, mirror_list
from engine.data.mnist import MNIST_FILES, load_dataset, locate_data
from server.cli.data import add_data_arguments, run_data

Serve = Callable[[Path], str]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a static file server for a directory; return its base URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(directory: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(directory))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens, so connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def good_mirror(mnist_dir: Path, serve: Serve) -> str:
    return serve(mnist_dir)


@pytest.fixture
def wrong_mirror(tmp_path_factory: pytest.TempPathFactory, serve: Serve) -> str:
    """A mirror serving files with the right names and wrong bytes."""
    root = tmp_path_factory.mktemp("wrong-mirror")
    for spec in MNIST_FILES:
        (root / spec.gz_name).write_bytes(b"<html>not found</html>")
    return serve(root)


def snapshot(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


def test_success_writes_verified_files(good_mirror: str, tmp_path: Path):
    dest = tmp_path / "new" / "mnist"
    assert download_mnist(dest, progress=False, mirrors=[good_mirror]) == dest
    assert snapshot(dest) == sorted(spec.gz_name for spec in MNIST_FILES)
    assert load_dataset(dest).train_size == 60_000


def test_wrong_file_falls_back_to_the_next_mirror(
    wrong_mirror: str, good_mirror: str, tmp_path: Path
):
    download_mnist(tmp_path, progress=False, mirrors=[wrong_mirror, good_mirror])
    assert load_dataset(tmp_path).test_size == 10_000


def test_unreachable_mirrors_fail_fast_and_change_nothing(closed_port_url: str, tmp_path: Path):
    dest = tmp_path / "cache" / "mnist"
    start = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        download_mnist(dest, progress=False, mirrors=[closed_port_url, closed_port_url + "b/"])
    assert time.monotonic() - start < 5
    message = str(caught.value)
    assert message.startswith(f"could not download train-images-idx3-ubyte.gz into {dest}: ")
    assert f"{closed_port_url}train-images-idx3-ubyte.gz: unreachable" in message
    assert f"{closed_port_url}b/train-images-idx3-ubyte.gz: unreachable" in message
    assert f"Nothing was changed in {dest}" in message
    assert snapshot(tmp_path) == []


def test_wrong_files_everywhere_leave_the_destination_as_it_was(wrong_mirror: str, tmp_path: Path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(DownloadError) as caught:
        download_mnist(tmp_path, progress=False, mirrors=[wrong_mirror])
    assert "expected 9,912,422 bytes, found 22" in str(caught.value)
    assert snapshot(tmp_path) == ["keep.txt"]


def test_a_file_missing_on_the_mirror_undoes_the_others(
    mnist_dir: Path, serve: Serve, tmp_path: Path
):
    partial = tmp_path / "partial-mirror"
    partial.mkdir()
    for spec in MNIST_FILES[:3]:
        shutil.copyfile(mnist_dir / spec.gz_name, partial / spec.gz_name)
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match=r"t10k-labels-idx1-ubyte\.gz: HTTP 404"):
        download_mnist(dest, progress=False, mirrors=[serve(partial)])
    assert not dest.exists()


def test_verified_files_are_kept_without_asking_any_mirror(
    mnist_dir: Path, closed_port_url: str, tmp_path: Path
):
    for spec in MNIST_FILES:
        shutil.copyfile(mnist_dir / spec.gz_name, tmp_path / spec.gz_name)
    assert download_mnist(tmp_path, progress=False, mirrors=[closed_port_url]) == tmp_path


def test_default_destination_is_the_user_cache(
    good_mirror: str, no_user_data: Path, monkeypatch, capsys
):
    monkeypatch.setenv(MIRRORS_ENV, good_mirror)
    assert download_mnist() == no_user_data
    assert "train-images-idx3-ubyte.gz" in capsys.readouterr().err  # the progress bar
    location = locate_data()
    assert (location.name, location.reason) == ("mnist", "user cache directory")


def test_mirror_list_comes_from_argument_environment_or_defaults(monkeypatch):
    monkeypatch.delenv(MIRRORS_ENV, raising=False)
    assert mirror_list()[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert mirror_list()[1] == "http://yann.lecun.com/exdb/mnist/"
    monkeypatch.setenv(MIRRORS_ENV, " http://a/x , http://b/ ,")
    assert mirror_list() == ["http://a/x/", "http://b/"]
    assert mirror_list(["http://c"]) == ["http://c/"]


def test_oversized_file_is_cut_short_and_refused(serve: Serve, tmp_path: Path):
    root = tmp_path / "huge-mirror"
    root.mkdir()
    (root / MNIST_FILES[0].gz_name).write_bytes(bytes(MNIST_FILES[0].gz_size + 1))
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match="expected 9,912,422 bytes, found more"):
        download_mnist(dest, progress=False, mirrors=[serve(root)])
    assert not dest.exists()


def test_files_follow_the_umask(good_mirror: str, tmp_path: Path):
    download_mnist(tmp_path, progress=False, mirrors=[good_mirror])
    umask = os.umask(0)
    os.umask(umask)
    for spec in MNIST_FILES:
        assert (tmp_path / spec.gz_name).stat().st_mode & 0o777 == 0o666 & ~umask


# --- `backprop-live data --download` ------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="backprop-live data")
    add_data_arguments(parser)
    return run_data(parser.parse_args(argv))


def test_cli_downloads_into_the_cache(good_mirror: str, no_user_data: Path, monkeypatch, capsys):
    monkeypatch.setenv(MIRRORS_ENV, good_mirror)
    assert run_cli("--download") == 0
    out, err = capsys.readouterr()
    assert f"Downloading the full MNIST into {no_user_data}" in err
    assert f"source:  {no_user_data}\n" in out
    assert "train:   60,000 digits\n" in out
    assert out.endswith("backprop-live now uses it by default.\n")
    assert locate_data().reason == "user cache directory"


def test_cli_downloads_into_data_dir(good_mirror: str, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv(MIRRORS_ENV, good_mirror)
    assert run_cli("--download", "--data-dir", str(tmp_path / "d")) == 0
    out = capsys.readouterr().out
    dest = tmp_path / "d"
    assert out.endswith(f"To use it: --data-dir {dest} (or BACKPROP_LIVE_DATA={dest}).\n")


def test_cli_download_failure_exits_1(closed_port_url: str, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv(MIRRORS_ENV, closed_port_url)
    assert run_cli("--download", "--data-dir", str(tmp_path / "d")) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "backprop-live data: error: could not download train-images-idx3-ubyte.gz" in err
    assert not (tmp_path / "d").exists()
