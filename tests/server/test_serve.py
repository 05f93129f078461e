"""`backprop-live serve`: the links it prints and the token it protects them with."""

from __future__ import annotations

import argparse

import pytest
from live_server import TOKEN, LiveServer

from server.cli.serve import add_serve_arguments, urls
from server.config import TOKEN_ENV, Settings, default_token


def test_serve_prints_the_presenter_and_viewer_links(server: LiveServer) -> None:
    log = server.log()
    base = f"http://127.0.0.1:{server.port}/"
    assert f"presenter: {base}?token={TOKEN}" in log
    assert f"viewers:   {base}\n" in log


def test_a_lan_host_prints_a_reachable_address() -> None:
    presenter, viewer = urls(Settings(host="0.0.0.0", port=8123, token="t"))
    assert "0.0.0.0" not in viewer
    assert viewer.startswith("http://") and viewer.endswith(":8123/")
    assert presenter == f"{viewer}?token=t"


def test_the_token_is_random_per_start_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    first, second = default_token(), default_token()
    assert first != second and len(first) >= 16
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment")
    assert default_token() == "from-the-environment"


def test_serve_defaults_to_loopback() -> None:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.port, args.token) == ("127.0.0.1", 8000, None)


def test_the_gallery_size_is_a_flag_that_takes_only_a_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    assert parser.parse_args([]).gallery_size == Settings().gallery_size == 5_000
    assert parser.parse_args(["--gallery-size", "30"]).gallery_size == 30
    for wrong in ("0", "-3", "1.5", "many"):
        with pytest.raises(SystemExit) as refused:
            parser.parse_args(["--gallery-size", wrong])
        assert refused.value.code == 2
        assert "--gallery-size" in capsys.readouterr().err
