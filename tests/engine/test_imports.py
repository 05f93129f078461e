"""The engine is the book: importing any of it loads no web framework, no JSON speed-ups and no
validation library; and the trainer process, which imports the engine and the trainer's own
modules, loads none of them either."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import engine

WEB_MODULES = ("fastapi", "starlette", "pydantic", "orjson", "uvicorn", "jinja2", "websockets")


def modules_loaded_by(names: list[str]) -> set[str]:
    """The top-level modules in ``sys.modules`` after importing ``names`` in a fresh Python."""
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def engine_modules() -> list[str]:
    return [info.name for info in pkgutil.walk_packages(engine.__path__, "engine.")]


def test_every_engine_module_imports_without_the_web_stack() -> None:
    names = engine_modules()
    assert "engine.network" in names and "engine.data.mnist" in names
    loaded = modules_loaded_by(names)
    assert not loaded & set(WEB_MODULES), sorted(loaded & set(WEB_MODULES))


def test_the_trainer_process_runs_without_the_web_stack() -> None:
    loaded = modules_loaded_by(["server.trainer.worker"])
    assert "numpy" in loaded
    assert not loaded & set(WEB_MODULES), sorted(loaded & set(WEB_MODULES))
