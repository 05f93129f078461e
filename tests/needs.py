"""What a test needs from the machine. A developer without it gets a skip that says why; CI
(CI=true, where .ci/run installs everything) must have it, so there its absence fails rather
than quietly making the run smaller."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest


def skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must have it", pytrace=False)
    pytest.skip(reason)


def debian_program(name: str, package: str) -> str:
    """Where ``name`` is: on the PATH, or where Debian's ``package`` puts it (root's PATH has
    /usr/sbin, a developer's may not)."""
    installed = (Path(folder) / name for folder in ("/usr/bin", "/usr/sbin"))
    found = shutil.which(name) or next((str(path) for path in installed if path.exists()), None)
    if found is None:
        skip_or_fail(f"{name} is not installed (apt-get install {package})")
    return found
