"""`backprop-live data [--download] [--data-dir DIR]`: where the digits come from.

Without --download it says which data a run would use and why (the search order of
`engine.data`), after loading and checking it. With --download it fetches the full
MNIST into --data-dir or the user cache. The main CLI (server/cli.py) wires these two
functions into its `data` subcommand.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.data.download import MIRRORS_ENV, download_mnist
from engine.data.mnist import (
    DATA_ENV,
    SAMPLE_NOTE,
    DataError,
    DataLocation,
    Dataset,
    find_mnist_files,
    load_location,
    locate_data,
    user_cache_dir,
)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `data` subcommand's flags to `parser`."""
    parser.add_argument(
        "--download",
        action="store_true",
        help="download the full MNIST (four files, 11 MB, MD5-checked) into --data-dir, "
        f"or else the user cache; mirrors can be set in {MIRRORS_ENV}",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="a directory with the four MNIST files (default: $BACKPROP_LIVE_DATA, "
        "then the user cache, then the built-in sample)",
    )


def run_data(args: argparse.Namespace) -> int:
    """Run the subcommand; 0 on success, 1 (with the reason on stderr) on a data error."""
    try:
        if args.download:
            download(args.data_dir)
        else:
            location = locate_data(args.data_dir)
            report(location, load_location(location))
    except DataError as error:
        print(f"backprop-live data: error: {error}", file=sys.stderr)
        return 1
    return 0


def download(data_dir: Path | None) -> None:
    """Fetch MNIST, then show what was stored and how runs will find it."""
    dest = data_dir if data_dir is not None else user_cache_dir()
    print(f"Downloading the full MNIST into {dest} ...", file=sys.stderr)
    download_mnist(dest)
    files, _ = find_mnist_files(dest)
    location = DataLocation("mnist", dest, "downloaded by this command", files)
    report(location, load_location(location))
    print(how_runs_find(dest, given=data_dir is not None))


def how_runs_find(dest: Path, given: bool) -> str:
    """The one thing to know after a download: will a plain `backprop-live serve` use it?"""
    if given:
        return f"To use it: --data-dir {dest} (or {DATA_ENV}={dest})."
    if os.environ.get(DATA_ENV):
        return f"Note: {DATA_ENV}={os.environ[DATA_ENV]} is set and takes precedence over it."
    return "backprop-live now uses it by default."


def report(location: DataLocation, dataset: Dataset) -> None:
    """Print the data source as aligned `key: value` lines, then the sample note if any."""
    lines = [("dataset", dataset.name), ("source", dataset.source)]
    if location.is_sample:
        lines.append(("file", str(location.path)))
    lines += [
        ("chosen", location.reason),
        ("train", f"{dataset.train_size:,} digits"),
        ("test", f"{dataset.test_size:,} digits"),
    ]
    if not location.is_sample:
        lines.append(("checked", "size and MD5 of all four files match the official ones"))
    for key, value in lines:
        print(f"{key + ':':9}{value}")
    if location.is_sample:
        print()
        print(SAMPLE_NOTE)
