"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def bfctl_env() -> dict[str, str]:
    """Environment for running ``python -m bfctl`` in a subprocess from any
    directory: the source tree is importable whether or not it is installed,
    and no debug or colour settings leak in from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if k not in ("BFCTL_DEBUG", "FORCE_COLOR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env
