"""``backprop-live serve``: the live server for a room, with its presenter and viewer links."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path

from server.config import (
    DEFAULT_GALLERY_SIZE,
    TOKEN_ENV,
    Settings,
    default_state_dir,
    default_token,
)

WS_MAX_MESSAGE_BYTES = 64 * 1024  # clients have nothing to say; cap what they can send
# A client that stops reading (a frozen tab, a phone gone to sleep) stops answering pings too:
# uvicorn then closes it, so it holds no buffers for long (see server.broadcast).
WS_PING_INTERVAL = 20.0
WS_PING_TIMEOUT = 20.0
# The training thread holds the GIL for all its pure-Python work; a thread that wants it (the
# event loop, a classify request) gets it after at most this long instead of the default 5 ms.
GIL_SWITCH_INTERVAL = 0.001


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 for a classroom LAN"
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data-dir", type=Path, help="directory with the four MNIST files")
    parser.add_argument(
        "--token", help=f"presenter token (default: ${TOKEN_ENV}, else a new random one)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=f"where the run is saved between restarts (default: {default_state_dir()})",
    )
    parser.add_argument(
        "--gallery-size",
        type=drawing_count,
        default=DEFAULT_GALLERY_SIZE,
        help="the most drawings the room's gallery keeps (default: %(default)s)",
    )


def drawing_count(text: str) -> int:
    count = int(text) if text.strip().isdigit() else 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of drawings above 0")
    return count


def lan_address() -> str:
    """This machine's address on the local network: where phones in the room connect."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent; it only picks a route
            return probe.getsockname()[0]
        except OSError:
            return socket.gethostbyname(socket.gethostname())


def urls(settings: Settings) -> tuple[str, str]:
    """The presenter's link (with the token) and the viewers' link."""
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = lan_address()
    if ":" in host:
        host = f"[{host}]"
    base = f"http://{host}:{settings.port}/"
    return f"{base}?token={settings.token}", base


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from engine.data.mnist import DataError, load_dataset
    from server.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    settings = Settings(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        token=args.token or default_token(),
        state_dir=args.state_dir or default_state_dir(),
        gallery_size=args.gallery_size,
    )
    try:
        dataset = load_dataset(settings.data_dir)
    except (DataError, OSError) as error:
        print(f"backprop-live: {error}", file=sys.stderr)
        return 1
    presenter, viewer = urls(settings)
    sizes = f" ({dataset.train_size:,} train / {dataset.test_size:,} test)"
    print(f"data:      {dataset.source}{sizes if dataset.name != 'sample' else ''}")
    print(f"state:     {settings.state_dir}")
    print(f"presenter: {presenter}")
    print(f"viewers:   {viewer}")
    print(f"drawing:   {viewer}draw", flush=True)
    uvicorn.run(
        create_app(settings, dataset),
        host=settings.host,
        port=settings.port,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        ws_ping_interval=WS_PING_INTERVAL,
        ws_ping_timeout=WS_PING_TIMEOUT,
        timeout_graceful_shutdown=3,
        log_level="warning",
    )
    return 0
