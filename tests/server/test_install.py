"""The package as a user gets it: the wheel, built from a copy of the checkout, installed with its
dependencies into a fresh virtualenv, and run from a directory outside the checkout. It must serve
every page and every file those pages load, /docs with nothing from another host, and train.

It builds and installs for real (pip fetches the dependencies, from its cache when it can): about
20 s on two cores, most of it pip installing the dependencies. `-m "not install"` leaves it out.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from live_server import free_port
from needs import skip_or_fail

pytestmark = pytest.mark.install

REPO = Path(__file__).resolve().parents[2]
TOKEN = "T"
STARTUP_TIMEOUT = 60.0
# What a checkout holds that a clean clone does not; build/ could slip stale files into a wheel.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", "artifacts", ".*_cache"
)
# Set for the test run, not in a user's shell: they would make the installed command import the
# checkout, or train on this machine's MNIST instead of the sample that the wheel carries.
TEST_RUN_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "BACKPROP_LIVE_DATA")

# How the browser uses what it loads: "page" (HTML), "module" (an ES module script), "script"
# (a classic one), "stylesheet", or "file" (anything else: icons, JSON). A browser refuses a
# module or a stylesheet served with another content type.
SCRIPT_TYPES = ("text/javascript", "application/javascript")
CONTENT_TYPES = {
    "page": ("text/html",),
    "module": SCRIPT_TYPES,
    "script": SCRIPT_TYPES,
    "stylesheet": ("text/css",),
}
# import { a } from "./a.js";  export { b } from "./b.js";  import "./c.js";  import("./d.js")
MODULE_IMPORT = re.compile(
    r"""\b(?:import|export)\b[^"';]*?\bfrom\s*["']([^"']+)["']|\bimport\s*\(?\s*["']([^"']+)["']"""
)
CSS_IMPORT = re.compile(r"""@import\s+(?:url\(\s*)?["']?([^"')\s;]+)""")
CSS_URL = re.compile(r"""(?<!@import )url\(\s*["']?([^"')]+)""")
# In an inline script, a quoted absolute path or URL, such as Swagger UI's '/openapi.json'.
QUOTED_URL = re.compile(r"""["'](/[^"'\s]*|[a-z][a-z0-9+.-]*://[^"'\s]*)["']""")


def skip_unless_venv_works() -> None:
    """A Python without ensurepip (Debian's without python3-venv) cannot make a venv with pip.
    Developers get a skip that says so; CI must have it."""
    missing = [name for name in ("venv", "ensurepip", "pip") if not importlib.util.find_spec(name)]
    if not missing:
        return
    reason = f"{sys.executable} lacks {', '.join(missing)}, so it cannot make a venv with pip"
    skip_or_fail(reason)


def run(
    command: list[str | Path], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``command``, which must succeed; its output is in the failure message."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done


def shell_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in TEST_RUN_VARIABLES}


def user_environment(home: Path) -> dict[str, str]:
    """A user's shell, with an empty user cache: no MNIST but the built-in sample."""
    return shell_environment() | {"XDG_CACHE_HOME": str(home / "cache"), "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class Installed:
    """The wheel, the venv it is installed in, and a user's directory outside the checkout."""

    wheel: Path
    venv: Path
    home: Path

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "backprop-live"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def build_wheel(tmp: Path) -> Path:
    """``pip wheel`` of a copy of the checkout, as a fresh clone would build it."""
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=NOT_IN_A_CLONE)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "wheel", "--no-deps", "--quiet", "--wheel-dir", tmp / "dist", source])
    (wheel,) = (tmp / "dist").glob("backprop_live-*.whl")
    return wheel


def install(wheel: Path, venv: Path) -> None:
    """A fresh venv with the wheel and its dependencies, from pip's cache where it can. Not
    compiled to bytecode ahead: that took longer than all the rest of this install."""
    run([sys.executable, "-m", "venv", venv])
    pip: list[str | Path] = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "install", "--quiet", "--no-compile", wheel], env=shell_environment())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    skip_unless_venv_works()
    tmp = tmp_path_factory.mktemp("install")
    assert not tmp.is_relative_to(REPO), f"{tmp} must be outside the checkout {REPO}"
    wheel = build_wheel(tmp)
    install(wheel, tmp / "venv")
    home = tmp / "home"
    home.mkdir()
    return Installed(wheel, tmp / "venv", home)


@pytest.fixture(scope="module")
def served(installed: Installed) -> Iterator[httpx.Client]:
    """``backprop-live serve`` from the venv, started in the user's directory."""
    port = free_port()
    command: list[str | Path] = [installed.command, "serve", "--port", str(port), "--token", TOKEN]
    command += ["--state-dir", installed.home / "state"]
    log_path = installed.home / "serve.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            command,
            cwd=installed.home,
            env=user_environment(installed.home),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0)
    try:
        wait_for_health(client, server, log_path)
        yield client
    finally:
        client.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def wait_for_health(client: httpx.Client, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            if client.get("/api/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"serve did not answer /api/health in {STARTUP_TIMEOUT} s:\n{log.read_text()}")


def expected_in_wheel() -> set[str]:
    """What the wheel must carry, read off the checkout: every module of engine/ and server/,
    the built-in sample, and templates/ and static/ inside the server package."""
    expected = {
        path.relative_to(REPO).as_posix()
        for top in ("engine", "server")
        for path in (REPO / top).rglob("*.py")
    }
    expected |= {f"engine/data/sample/{path.name}" for path in files(REPO / "engine/data/sample")}
    for folder in ("templates", "static"):
        expected |= {f"server/{path.relative_to(REPO).as_posix()}" for path in files(REPO / folder)}
    return expected


def files(folder: Path) -> list[Path]:
    return [
        path for path in folder.rglob("*") if path.is_file() and "__pycache__" not in path.parts
    ]


def test_the_wheel_carries_every_module_and_file_of_the_checkout(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        missing = expected_in_wheel() - set(wheel.namelist())
    assert not missing, (
        f"missing from the wheel: {sorted(missing)}; a new sub-package goes into "
        "[tool.setuptools] packages in pyproject.toml"
    )


def test_the_venv_runs_the_installed_package_not_the_checkout(installed: Installed) -> None:
    """Otherwise every test below could pass on the checkout's files."""
    where = (
        "import engine, server.resources as r;"
        "print(engine.__file__, r.__file__, r.TEMPLATES_DIR, r.STATIC_DIR)"
    )
    done = run([installed.python, "-c", where], installed.home, user_environment(installed.home))
    (site_packages,) = installed.venv.glob("lib/python3*/site-packages")
    for path in done.stdout.split():
        assert Path(path).is_relative_to(site_packages), f"{path} is not in the installed wheel"


class PageReferences(HTMLParser):
    """What a page makes the browser load, as (URL as written, kind; see CONTENT_TYPES): its
    scripts, stylesheets and icons, and the paths and URLs quoted in its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self.in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        src, href = found.get("src"), found.get("href")
        if tag == "script" and src:
            self.found.append((src, "module" if found.get("type") == "module" else "script"))
        elif tag == "link" and href:
            self.found.append((href, "stylesheet" if found.get("rel") == "stylesheet" else "file"))
        elif src:
            self.found.append((src, "file"))
        self.in_inline_script = tag == "script" and not src

    def handle_endtag(self, tag: str) -> None:
        self.in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self.in_inline_script:
            self.found += [(url, "file") for url in QUOTED_URL.findall(data)]


def loads(kind: str, text: str) -> list[tuple[str, str]]:
    """What a file of ``kind`` makes the browser load next, as (URL as written, kind)."""
    if kind == "page":
        parser = PageReferences()
        parser.feed(text)
        return parser.found
    if kind == "module":
        return [(first or second, "module") for first, second in MODULE_IMPORT.findall(text)]
    if kind == "stylesheet":
        return [(url, "stylesheet") for url in CSS_IMPORT.findall(text)] + [
            (url, "file") for url in CSS_URL.findall(text)
        ]
    return []


def crawl(client: httpx.Client, page: str) -> dict[str, str]:
    """``page`` and everything it loads, followed through imports, as {path: kind}. Each must be
    on this server, answer 200, and have the content type that its use needs."""
    here = urlsplit(str(client.base_url))
    loaded: dict[str, str] = {}
    to_fetch = {(urljoin(str(client.base_url), page), "page")}
    while to_fetch:
        url, kind = to_fetch.pop()
        where = urlsplit(url)
        assert (where.scheme, where.netloc) == (here.scheme, here.netloc), f"{page} loads {url}"
        response = client.get(url)
        assert response.status_code == 200, f"{page} loads {url}: {response.status_code}"
        content_type = response.headers["content-type"]
        assert content_type.startswith(CONTENT_TYPES.get(kind, "")), f"{url}: {content_type}"
        loaded[where.path] = kind
        found = {(urljoin(url, ref), use) for ref, use in loads(kind, response.text)}
        to_fetch |= {
            (ref, use)
            for ref, use in found
            if not ref.startswith("data:") and urlsplit(ref).path not in loaded
        }
    return loaded


@pytest.mark.parametrize("page", ["/", "/draw"])
def test_each_page_and_every_file_it_loads(served: httpx.Client, page: str) -> None:
    loaded = crawl(served, page)
    modules = [path for path, kind in loaded.items() if kind == "module"]
    # The page names one module; the others are found only by following its imports.
    assert len(modules) > 1, f"{page} loads the modules {modules}"
    assert "stylesheet" in loaded.values(), f"{page} loads no stylesheet: {loaded}"


def test_docs_and_every_file_it_loads_come_from_this_server(served: httpx.Client) -> None:
    loaded = crawl(served, "/docs")
    kinds = sorted(loaded.values())
    assert kinds.count("script") == kinds.count("stylesheet") == 1, loaded  # Swagger UI's own
    assert {"/openapi.json", "/docs/oauth2-redirect"} <= loaded.keys(), loaded
    schema = served.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.1") and "/api/run/step" in schema["paths"]
    assert served.get("/redoc").status_code == 404  # ReDoc would come from a CDN


def test_health_and_a_training_step(served: httpx.Client) -> None:
    assert served.get("/api/health").json() == {"status": "ok"}
    before = served.get("/api/run").json()
    assert before["dataset"]["name"] == "sample", before["dataset"]
    stepped = served.post("/api/run/step", headers={"Authorization": f"Bearer {TOKEN}"})
    assert stepped.status_code == 200, stepped.text
    assert stepped.json()["examples_seen"] > before["examples_seen"]


def test_train_prints_its_results(installed: Installed) -> None:
    command: list[str | Path] = [installed.command, "train", "--epochs", "1", "--json"]
    done = run(command, cwd=installed.home, env=user_environment(installed.home))
    results = json.loads(done.stdout)
    assert (results["dataset"], results["epochs"], results["train_size"]) == ("sample", 1, 8000)
    assert results["test_accuracy"] > 0.2, results  # a tenth is chance
