"""Fetch the full MNIST (the four official .gz files) into the user cache.

All or nothing: every file is downloaded to a temporary file beside its destination
and checked against the official size and MD5 before any of them is moved into place,
so a failed or interrupted download never leaves a half-written or unverified file
that the next run would trip over.

The mirrors are the ones torchvision uses; set `BACKPROP_LIVE_MNIST_MIRRORS` to a
comma-separated list of base URLs (each serving the four .gz names) to use others, for
example a local copy on a machine without internet.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator, Sequence
from http.client import HTTPException
from pathlib import Path

from tqdm import tqdm

from engine.data.mnist import MNIST_FILES, DataError, MnistFile, check_bytes, user_cache_dir

DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MIRRORS_ENV = "BACKPROP_LIVE_MNIST_MIRRORS"
# Short, and no retries: without a network the answer should come in seconds, not minutes.
TIMEOUT_SECONDS = 5.0
CHUNK_BYTES = 1 << 16


class DownloadError(DataError):
    """No mirror delivered a verified file; the destination was left as it was."""


class MirrorFailure(Exception):
    """One mirror failed for one file; the next mirror may still succeed."""

    def __init__(self, reason: str, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.unreachable = unreachable


def download_mnist(
    dest: Path | None = None,
    progress: bool = True,
    mirrors: Sequence[str] | None = None,
) -> Path:
    """Download the four MNIST .gz files into `dest` (default: the user cache); return it.

    Files already there with the right MD5 are kept. `mirrors` defaults to
    $BACKPROP_LIVE_MNIST_MIRRORS, else DEFAULT_MIRRORS. Raises DownloadError, after
    undoing everything it did, when some file cannot be fetched from any mirror.
    """
    dest = Path(dest) if dest is not None else user_cache_dir()
    todo = [spec for spec in MNIST_FILES if not is_verified(dest / spec.gz_name, spec)]
    if not todo:
        return dest
    urls = mirror_list(mirrors)
    created = make_directory(dest)
    fetched: list[tuple[Path, Path]] = []
    try:
        unreachable: set[str] = set()
        for spec in todo:
            temp = fetch(spec, dest, urls, unreachable, progress)
            fetched.append((temp, dest / spec.gz_name))
        for temp, final in fetched:
            os.replace(temp, final)
    except BaseException:
        for temp, _ in fetched:
            temp.unlink(missing_ok=True)
        remove_directories(created)
        raise
    return dest


def mirror_list(mirrors: Sequence[str] | None = None) -> list[str]:
    """The base URLs to try, in order, each ending in '/'."""
    if mirrors is None:
        from_env = os.environ.get(MIRRORS_ENV, "")
        mirrors = [url.strip() for url in from_env.split(",") if url.strip()] or DEFAULT_MIRRORS
    return [url if url.endswith("/") else url + "/" for url in mirrors]


def is_verified(path: Path, spec: MnistFile) -> bool:
    """Whether `path` already holds the official file, so it need not be fetched again."""
    if not path.is_file() or path.stat().st_size != spec.gz_size:
        return False
    try:
        check_bytes(path, path.read_bytes(), spec.gz_size, spec.gz_md5)
    except DataError:
        return False
    return True


def fetch(
    spec: MnistFile, dest: Path, mirrors: list[str], unreachable: set[str], progress: bool
) -> Path:
    """Download one file from the first mirror that delivers it intact; return the temp file.

    A mirror that could not be reached is skipped for the remaining files, so a dead
    primary costs one timeout, not one per file.
    """
    failures: list[str] = []
    for mirror in mirrors:
        url = mirror + spec.gz_name
        if mirror in unreachable:
            failures.append(f"{url}: skipped, unreachable before")
            continue
        try:
            return fetch_from(url, spec, dest, progress)
        except MirrorFailure as failure:
            failures.append(f"{url}: {failure}")
            if failure.unreachable:
                unreachable.add(mirror)
    raise DownloadError(
        f"could not download {spec.gz_name} into {dest}: "
        + "; ".join(failures)
        + f". Nothing was changed in {dest}. Check the network connection, or set "
        f"{MIRRORS_ENV} to mirrors that serve the four MNIST .gz files."
    )


def fetch_from(url: str, spec: MnistFile, dest: Path, progress: bool) -> Path:
    """Download `url` into a new temp file in `dest`; return it once size and MD5 match."""
    # Not mkstemp: its files are private (0600), while the cache should follow the umask.
    temp = dest / f".{spec.gz_name}.{secrets.token_hex(8)}.part"
    try:
        with contextlib.closing(receive(url, spec, progress)) as chunks:
            write_checked(temp, chunks, spec)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise DownloadError(f"{temp}: could not write the download ({error})") from error
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def write_checked(path: Path, chunks: Iterator[bytes], spec: MnistFile) -> None:
    """Write `chunks` to a new file, raising MirrorFailure unless size and MD5 are official.

    Stops as soon as a server sends more than the official size: whatever that is, it
    is not the file, and it should not fill the disk.
    """
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    with open(path, "xb") as out:
        for chunk in chunks:
            size += len(chunk)
            if size > spec.gz_size:
                raise MirrorFailure(f"expected {spec.gz_size:,} bytes, found more")
            out.write(chunk)
            md5.update(chunk)
        out.flush()
        os.fsync(out.fileno())
    if size != spec.gz_size:
        raise MirrorFailure(f"expected {spec.gz_size:,} bytes, found {size:,}")
    if md5.hexdigest() != spec.gz_md5:
        raise MirrorFailure(f"expected md5 {spec.gz_md5}, found {md5.hexdigest()}")


def receive(url: str, spec: MnistFile, progress: bool) -> Generator[bytes, None, None]:
    """The response body in chunks, with a progress bar; network trouble is a MirrorFailure.

    A generator, so errors of the network (here) and of the disk (in the caller) stay
    apart: one means "try the next mirror", the other "stop".
    """
    try:
        with (
            urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response,
            progress_bar(spec, progress) as bar,
        ):
            while chunk := response.read(CHUNK_BYTES):
                bar.update(len(chunk))
                yield chunk
    except urllib.error.HTTPError as error:
        raise MirrorFailure(f"HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        raise MirrorFailure(f"unreachable ({error.reason})", unreachable=True) from error
    except (OSError, HTTPException) as error:
        raise MirrorFailure(f"unreachable ({error!r})", unreachable=True) from error


def progress_bar(spec: MnistFile, enabled: bool) -> tqdm:
    """A byte counter on stderr, so stdout stays clean for whatever the caller prints."""
    return tqdm(
        total=spec.gz_size,
        desc=spec.gz_name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not enabled,
        leave=False,
    )


def make_directory(dest: Path) -> list[Path]:
    """Create `dest` and its missing parents; return those created, deepest first."""
    created = [path for path in (dest, *dest.parents) if not path.exists()]
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(
            f"{dest}: expected a directory to download into, found {error}"
        ) from error
    return created


def remove_directories(created: list[Path]) -> None:
    """Undo `make_directory`, as far as the directories are still empty."""
    for path in created:
        try:
            path.rmdir()
        except OSError:
            return
