"""The Dockerfile's own commands, run here: no Docker engine is needed to check that its build
stage makes the wheel that the image installs, that its CMD starts the server the way the image
would, and that its HEALTHCHECK passes against it."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import httpx
from live_server import free_port

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def instruction(name: str) -> str:
    """The text of the last ``name`` instruction, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    matches = re.findall(rf"^{name}\s+(.*)$", text, flags=re.MULTILINE)
    assert matches, f"the Dockerfile has no {name}"
    return matches[-1].strip()


@dataclass
class Stage:
    """One FROM and the instructions after it, as (KEYWORD, arguments)."""

    name: str
    image: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == keyword]


def stages() -> list[Stage]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    found: list[Stage] = []
    for line in text.splitlines():
        keyword, _, arguments = line.strip().partition(" ")
        if not keyword or keyword.startswith("#"):
            continue
        if keyword.upper() == "FROM":
            image, *name = re.split(r"\s+as\s+", arguments.strip(), maxsplit=1, flags=re.I)
            found.append(Stage(name[0] if name else str(len(found)), image))
        else:
            found[-1].instructions.append((keyword.upper(), arguments.strip()))
    return found


class Filesystem:
    """A stage's filesystem under a local folder: /src in the stage is ``root``/src here."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.workdir = PurePosixPath("/")

    def local(self, path: str) -> Path:
        return self.root / (self.workdir / path).relative_to("/")

    def copy(self, sources: list[Path], destination: str) -> None:
        """COPY's rules: a folder's contents go into the destination; a file goes into it when
        it ends with / or several sources are copied, else becomes it."""
        target = self.local(destination)
        for source in sources:
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            elif destination.endswith("/") or len(sources) > 1:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / source.name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)

    def local_argument(self, argument: str) -> str:
        """An absolute path, alone or as ``--option=/path``, mapped here."""
        option, equals, value = argument.rpartition("=")
        return f"{option}{equals}{self.local(value)}" if value.startswith("/") else argument

    def run(self, command: str) -> None:
        """A RUN of pip, with this test's Python and the stage's absolute paths mapped here."""
        argv = shlex.split(command)
        assert argv[0] == "pip", f"only pip commands are run here, not {command!r}"
        argv = [self.local_argument(argument) for argument in argv[1:]]
        self.local(".").mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "pip", *argv],
            cwd=self.local("."),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"RUN {command} failed:\n{done.stdout}{done.stderr}"


def build_stage(stage: Stage, root: Path) -> Filesystem:
    """Run ``stage``'s WORKDIR, COPY (from the checkout) and RUN instructions under ``root``."""
    files = Filesystem(root)
    for keyword, arguments in stage.instructions:
        if keyword == "WORKDIR":
            files.workdir = files.workdir / arguments
        elif keyword == "COPY":
            *sources, destination = arguments.split()
            files.copy([REPO / source for source in sources], destination)
        elif keyword == "RUN":
            files.run(arguments)
    return files


def test_the_image_installs_the_wheel_its_build_stage_builds(tmp_path: Path) -> None:
    *builders, image = stages()
    copies = image.arguments("COPY")
    # The image holds no source tree: all it copies comes from a build stage.
    assert copies and all(copy.startswith("--from=") for copy in copies), copies
    built = {stage.name: build_stage(stage, tmp_path / stage.name) for stage in builders}
    installed = Filesystem(tmp_path / "image")
    for copy in copies:
        stage, *sources, destination = copy.split()
        from_files = built[stage.removeprefix("--from=")]
        installed.copy([from_files.local(source) for source in sources], destination)
    (install,) = [run for run in image.arguments("RUN") if "pip install" in run]
    assert not {"-e", "--editable", "."} & set(install.split()), install
    wheels = [
        wheel
        for pattern in shlex.split(install)[2:]
        for wheel in installed.root.glob(pattern.lstrip("/"))
    ]
    assert [wheel.suffix for wheel in wheels] == [".whl"], install
    with zipfile.ZipFile(wheels[0]) as wheel:
        assert "server/templates/index.html" in wheel.namelist()


def test_the_image_is_slim_and_runs_as_a_user() -> None:
    assert re.match(r"python:3\.\d+-slim", instruction("FROM"))
    assert instruction("USER") not in ("root", "0")


def test_cmd_serves_and_the_healthcheck_passes(tmp_path: Path) -> None:
    command = json.loads(instruction("CMD"))
    assert command[:2] == ["backprop-live", "serve"] and "0.0.0.0" in command
    port = free_port()
    argv = [arg.replace("8000", str(port)).replace("/data", str(tmp_path)) for arg in command]
    argv[argv.index("0.0.0.0")] = "127.0.0.1"  # the same command, kept off the network here
    server = subprocess.Popen(
        [sys.executable, "-m", "server.cli", *argv[1:]],
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        check = json.loads(re.sub(r"^.*?CMD\s+", "", instruction("HEALTHCHECK")))
        check = [arg.replace("8000", str(port)) for arg in check]
        assert check[0] == "python"
        assert subprocess.run([sys.executable, *check[1:]], timeout=30).returncode == 0
    finally:
        server.terminate()
        server.wait(30)
    assert subprocess.run([sys.executable, *check[1:]], timeout=30).returncode != 0
