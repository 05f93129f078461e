"""``backprop-live serve --redis URL --workers N``: N web processes sharing one port
(SO_REUSEPORT: the kernel spreads new connections over them), and a trainer if Redis has none.

This process only supervises: it starts the others with the same flags, starts again one that
dies (a page on it reconnects to the others meanwhile), and stops them all on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any

from server.config import TOKEN_ENV, default_token

POLL_INTERVAL = 0.5
QUICK_DEATH = 5.0  # seconds: a process that dies this soon after its start would only die again
STOP_TIMEOUT = 15.0


def child_argv(argv: list[str]) -> list[str]:
    """The serve command's flags for one web process: without ``--workers``."""
    kept: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == "--workers":
            skip = True
        elif not word.startswith("--workers="):
            kept.append(word)
    return kept


def trainer_argv(args: argparse.Namespace) -> list[str]:
    words = ["trainer", "--redis", args.redis]
    if args.data_dir is not None:
        words += ["--data-dir", str(args.data_dir)]
    if args.state_dir is not None:
        words += ["--state-dir", str(args.state_dir)]
    return words


class Supervisor:
    def __init__(self, commands: list[list[str]], env: dict[str, str]) -> None:
        self.commands = commands
        self.env = env
        self.processes: list[Any] = [None] * len(commands)
        self.started_at = [0.0] * len(commands)
        self.stopping = False

    def start(self, index: int) -> None:
        command = [sys.executable, "-m", "server.cli", *self.commands[index]]
        self.processes[index] = subprocess.Popen(command, env=self.env)
        self.started_at[index] = time.monotonic()

    def watch(self) -> int:
        """Until asked to stop; 1 if a process dies as soon as it starts (a port in use...)."""
        while not self.stopping:
            time.sleep(POLL_INTERVAL)
            for index, process in enumerate(self.processes):
                if process.poll() is None or self.stopping:
                    continue
                if time.monotonic() - self.started_at[index] < QUICK_DEATH:
                    print(f"backprop-live: {self.commands[index][0]} exited", file=sys.stderr)
                    return 1
                print(f"backprop-live: a process exited ({process.returncode}); starting it again")
                self.start(index)
        return 0

    def stop(self) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes:
            if process is None:
                continue
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_workers(args: argparse.Namespace) -> int:
    from redis import RedisError

    from server.trainer.streams import trainer_online

    env = dict(os.environ)
    env[TOKEN_ENV] = args.token or default_token()  # one token for them all
    try:
        online = trainer_online(args.redis)
    except (RedisError, ValueError) as error:
        print(f"backprop-live: redis at {args.redis}: {error}", file=sys.stderr)
        return 1
    argv = child_argv(sys.argv[1:])
    commands = [[*argv, "--reuse-port"] for _ in range(args.workers)]
    if not online:
        print(f"no trainer at {args.redis}: starting one")
        commands.insert(0, trainer_argv(args))
    supervisor = Supervisor(commands, env)

    def stop(signum: int, frame: Any) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(len(commands)):
        supervisor.start(index)
    try:
        return supervisor.watch()
    finally:
        supervisor.stop()
