"""``backprop-live trainer --redis URL``: the one training run that web processes started with
``serve --redis URL`` fan out (see :mod:`server.trainer.streams`). It saves the run in
``--state-dir`` and resumes it from there when started again; SIGTERM or Ctrl-C saves and stops.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from server.config import default_state_dir

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def add_trainer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis",
        required=True,
        metavar="URL",
        help=f"the Redis to report to, e.g. {DEFAULT_REDIS}",
    )
    parser.add_argument("--data-dir", type=Path, help="directory with the four MNIST files")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=f"where the run is saved between restarts (default: {default_state_dir()})",
    )


def run_trainer(args: argparse.Namespace) -> int:
    from engine.data.mnist import DataError
    from server.trainer.streams import run_trainer as serve_redis
    from server.trainer.worker import TrainerSettings

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = TrainerSettings(args.data_dir, args.state_dir or default_state_dir())
    try:
        serve_redis(settings, args.redis)
    except (DataError, OSError, ValueError) as error:  # ValueError: not a Redis URL
        print(f"backprop-live: {error}", file=sys.stderr)
        return 1
    return 0
