"""``backprop-live serve``: the live server for a room, with its presenter and viewer links."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import resource
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from server.config import (
    CONNECT_LIMIT,
    DEFAULT_GALLERY_SIZE,
    RATE_LIMITS,
    RESERVED_FILES,
    TOKEN_ENV,
    Settings,
    default_max_viewers,
    default_state_dir,
    default_token,
)
from server.limits import Limit, LimitError, parse_limit

WS_MAX_MESSAGE_BYTES = 64 * 1024  # clients have nothing to say; cap what they can send
# A client that stops reading (a frozen tab, a phone gone to sleep) stops answering pings too:
# uvicorn then closes it, so it holds no buffers for long (see server.broadcast).
WS_PING_INTERVAL = 20.0
WS_PING_TIMEOUT = 20.0
# The training thread holds the GIL for all its pure-Python work; a thread that wants it (the
# event loop, a classify request) gets it after at most this long instead of the default 5 ms.
GIL_SWITCH_INTERVAL = 0.001
LISTEN_BACKLOG = 2048  # connections the kernel holds while a room's phones arrive at once


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 for a classroom LAN"
    )
    parser.add_argument("--port", type=port_number, default=8000, help="1 to 65535")
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
    add_limit_arguments(parser.add_argument_group("limits (see the README's Limits)"))
    group = parser.add_argument_group("several web processes (see the README's A lecture hall)")
    group.add_argument(
        "--redis",
        metavar="URL",
        help="follow the trainer that `backprop-live trainer --redis URL` runs, instead of "
        "training here; any number of web processes may follow it",
    )
    group.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="with --redis: start this many web processes on one port (and a trainer if none "
        "is running)",
    )
    group.add_argument(
        "--reuse-port",
        action="store_true",
        help="share the port with other web processes on this machine (SO_REUSEPORT)",
    )


def drawing_count(text: str) -> int:
    count = int(text) if text.strip().isdigit() else 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of drawings above 0")
    return count


def add_limit_arguments(group: argparse._ArgumentGroup) -> None:
    """One flag per kind of work viewers may ask for, and the websocket door's."""
    for kind, (routes, default) in RATE_LIMITS.items():
        group.add_argument(
            f"--{kind}-limit",
            type=limit_reader(default),
            default=default,
            metavar="LIMIT",
            help=f"{routes}: per client RATE with bursts of N, and a total for everyone "
            f"together, as RATE,burst=N,total=RATE (default {default}); or off",
        )
    group.add_argument(
        "--connect-limit",
        type=limit_reader(CONNECT_LIMIT, total=False),
        default=CONNECT_LIMIT,
        metavar="LIMIT",
        help=f"new websockets per address, as RATE,burst=N (default {CONNECT_LIMIT}); or off",
    )
    group.add_argument(
        "--max-viewers",
        type=positive_int,
        default=None,
        help=f"websockets open at once (default for this machine: {default_max_viewers()})",
    )
    group.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="reverse proxies whose X-Forwarded-For names the client, as uvicorn's flag: "
        "addresses or networks, comma-separated, or '*' (default: none, so each proxy counts "
        "as one client)",
    )


def port_number(text: str) -> int:
    port = int(text) if text.strip().isdigit() else -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give a number from 1 to 65535")
    return port


def positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return int(text)


def limit_reader(default: Limit, total: bool = True) -> Callable[[str], Limit | None]:
    """An argparse type for a limit flag: parts of ``default`` changed (see ``parse_limit``)."""

    def read(text: str) -> Limit | None:
        try:
            limit = parse_limit(text, default)
        except LimitError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        if not total and limit is not None and limit.total is not None:
            raise argparse.ArgumentTypeError("no total here: --max-viewers is the total")
        return limit

    return read


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


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        token=args.token or default_token(),
        state_dir=args.state_dir or default_state_dir(),
        rate_limits={kind: getattr(args, f"{kind}_limit") for kind in RATE_LIMITS},
        connect_limit=args.connect_limit,
        max_viewers=args.max_viewers or default_max_viewers(),
        forwarded_allow_ips=args.forwarded_allow_ips,
        gallery_size=args.gallery_size,
        redis_url=args.redis,
    )


def listening_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A socket bound to ``host``:``port`` and listening, for uvicorn to serve on: so that the
    links are printed only once they work. With ``reuse_port`` other processes may listen on
    the same port, and the kernel spreads new connections over them. Raises OSError (in use,
    not this machine's, ...)."""
    family, kind, protocol, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        if reuse_port:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(address)
        listener.listen(LISTEN_BACKLOG)
    except OSError:
        listener.close()
        raise
    return listener


def bind_error(error: OSError | UnicodeError, host: str, port: int) -> str:
    if getattr(error, "errno", None) == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use: stop what uses it or choose --port"
    return f"cannot listen on {host}:{port}: {getattr(error, 'strerror', None) or error}"


def allow_open_files(viewers: int) -> None:
    """Raise this process's open-file limit towards the hard limit: a websocket is a file."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = viewers + RESERVED_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from redis import RedisError

    from engine.data.mnist import DataError, load_dataset
    from server.app import create_app
    from server.trainer.streams import shared_token

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.workers is not None:
        if args.redis is None:
            print("backprop-live: --workers needs --redis URL", file=sys.stderr)
            return 2
        from server.cli.workers import run_workers

        return run_workers(args)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    if args.redis is not None and not (args.token or os.environ.get(TOKEN_ENV)):
        try:
            args.token = shared_token(args.redis, default_token())
        except (RedisError, ValueError) as error:
            print(f"backprop-live: redis at {args.redis}: {error}", file=sys.stderr)
            return 1
    settings = settings_from(args)
    try:
        listener = listening_socket(settings.host, settings.port, args.reuse_port)
    except (OSError, UnicodeError) as error:  # UnicodeError: a host name IDNA cannot encode
        message = bind_error(error, settings.host, settings.port)
        print(f"backprop-live: {message}", file=sys.stderr)
        return 1
    allow_open_files(settings.max_viewers)
    try:
        dataset = load_dataset(settings.data_dir)
    except (DataError, OSError) as error:
        print(f"backprop-live: {error}", file=sys.stderr)
        listener.close()
        return 1
    presenter, viewer = urls(settings)
    sizes = f" ({dataset.train_size:,} train / {dataset.test_size:,} test)"
    print(f"data:      {dataset.source}{sizes if dataset.name != 'sample' else ''}")
    print(f"state:     {settings.state_dir}")
    print(f"presenter: {presenter}")
    print(f"viewers:   {viewer}")
    print(f"drawing:   {viewer}draw", flush=True)
    config = uvicorn.Config(
        create_app(settings, dataset),
        ws_per_message_deflate=settings.ws_per_message_deflate,
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        ws_ping_interval=WS_PING_INTERVAL,
        ws_ping_timeout=WS_PING_TIMEOUT,
        backlog=LISTEN_BACKLOG,
        # The app trusts the proxies of --forwarded-allow-ips itself (server.app); uvicorn's
        # own default would trust 127.0.0.1, letting anyone local name any address.
        proxy_headers=False,
        timeout_graceful_shutdown=3,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    server.run(sockets=[listener])
    return 0 if server.started else 1
