"""Where the server's files are: the page templates, the browser's static files and Swagger UI's.

An installed wheel carries ``templates/`` and ``static/`` inside the ``server`` package
(``pyproject.toml`` maps them there). A checkout keeps them at its top level, beside
``server/``; an editable install runs from the checkout, because setuptools' editable finder
cannot import a folder that it maps into a regular package.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]  # ships no py.typed

CHECKOUT = Path(__file__).resolve().parents[1]


def server_folder(name: str) -> Path:
    """``name`` inside the installed ``server`` package, else at the top of the checkout."""
    installed = files("server") / name
    # Jinja and StaticFiles read folders on disk; a wheel installs as one.
    if isinstance(installed, Path) and installed.is_dir():
        return installed
    in_checkout = CHECKOUT / name
    if not in_checkout.is_dir():
        raise FileNotFoundError(f"{name}/ is neither in the installed package nor at {in_checkout}")
    return in_checkout


TEMPLATES_DIR = server_folder("templates")
STATIC_DIR = server_folder("static")
SWAGGER_UI_DIR = Path(swagger_ui_path)
