"""A user's project may name its own modules ``providers``, ``runtime``, ``bench`` and ``tests``:
bfctl's runtime and providers are ``bfctl.runtime`` and ``bfctl.providers``, so ``bfctl serve``
and the project's own pytest import the project's modules under those names, not ours.

Run as a user runs them: the installed bfctl, no repository on ``PYTHONPATH``.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from support import make_project, serving

FLOW = """\
from buildflow import Flow

import bench
import runtime
from providers import greeting

app = Flow()
service = app.service()


@service.endpoint("/hello", method="GET")
def hello() -> str:
    return f"{greeting()} ({runtime.NAME}, {bench.NAME})"
"""

OWN_MODULES = {
    "providers.py": 'def greeting() -> str:\n    return "hello from the project"\n',
    "runtime.py": 'NAME = "its runtime"\n',
    "bench.py": 'NAME = "its bench"\n',
}

EXPECTED = "hello from the project (its runtime, its bench)"

PROJECT_TESTS = f"""\
from bfctl.testing import TestClient

from main import app


def test_hello() -> None:
    with TestClient(app) as client:
        assert client.get("/hello").json() == {EXPECTED!r}
"""

HELLO = """\
from buildflow import Flow

app = Flow()
service = app.service()


@service.endpoint("/hello", method="GET")
def hello() -> str:
    return "hello"
"""

#: The test file ``bfctl init`` wrote before the test client moved to ``bfctl.testing``.
OLD_PATH_TESTS = """\
from runtime.testing import TestClient

from main import app


def test_hello() -> None:
    with TestClient(app) as client:
        assert client.get("/hello").json() == "hello"
"""


@pytest.fixture
def user_env(bfctl_env: dict[str, str]) -> dict[str, str]:
    """The environment of a user who installed bfctl: nothing of this repository on the path."""
    return {k: v for k, v in bfctl_env.items() if k != "PYTHONPATH"}


def run_pytest(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "default"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_a_project_with_modules_named_as_ours_serves_and_runs_its_own_tests(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    project = make_project(
        tmp_path / "shop",
        {
            "main.py": FLOW,
            **OWN_MODULES,
            "tests/__init__.py": "",
            "tests/test_main.py": PROJECT_TESTS,
        },
    )

    with (
        serving(["main:app", "--port", "0"], project, user_env) as server,
        urllib.request.urlopen(f"{server.url}/hello") as answer,
    ):
        assert answer.read().decode() == f'"{EXPECTED}"'

    tested = run_pytest(project, user_env)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout


def test_tests_written_for_the_old_test_client_path_still_run_with_a_warning(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    project = make_project(tmp_path / "starter", {"main.py": HELLO, "tests/test_main.py": OLD_PATH_TESTS})

    tested = run_pytest(project, user_env)

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout
    assert "`runtime.testing` is now `bfctl.testing`" in tested.stdout


def test_outside_a_test_run_no_runtime_or_providers_module_is_ours(tmp_path: Path, user_env: dict[str, str]) -> None:
    probe = (
        "import importlib.util, bfctl.runtime.app, bfctl.providers.local\n"
        "print([importlib.util.find_spec(name) is not None for name in ('runtime', 'providers')])\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=user_env, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[False, False]"
