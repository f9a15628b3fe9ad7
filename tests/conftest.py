"""Shared test fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# No test may reach Google's metadata server: google-auth probes 169.254.169.254 when it finds no
# credentials unless NO_GCE_CHECK is exactly "true"; a probe that happens anyway stays on a closed
# loopback port. Set for the whole run, so every subprocess a test starts inherits it.
os.environ["NO_GCE_CHECK"] = "true"
os.environ["GCE_METADATA_HOST"] = os.environ["GCE_METADATA_IP"] = "127.0.0.1:9"


@pytest.fixture(scope="module", autouse=True)
def _no_process_outlives_its_module(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the module whose tests or fixtures leave a process running (a database or emulator
    nobody destroyed, a server's child orphaned by a kill), naming each one, and ends them, so
    that they do not pile up from run to run."""
    import leftovers

    module = request.node.nodeid
    os.environ[leftovers.OWNER] = leftovers.owner(module)
    yield
    del os.environ[leftovers.OWNER]
    left = leftovers.still_running(module)
    if left:
        described = "\n".join(leftovers.describe(p, test) for p, test in left.items())
        leftovers.end(list(left))
        pytest.fail(f"{module} left {len(left)} process(es) running (now ended):\n{described}", pytrace=False)


@pytest.fixture(autouse=True)
def _processes_name_their_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """What the test starts carries its name (see ``leftovers``)."""
    import leftovers

    module = request.node.getparent(pytest.Module).nodeid
    os.environ[leftovers.OWNER] = leftovers.owner(module, request.node.name)
    yield
    os.environ[leftovers.OWNER] = leftovers.owner(module)


@pytest.fixture
def bfctl_env() -> dict[str, str]:
    """Environment for running ``python -m bfctl`` in a subprocess from any
    directory: the source tree is importable whether or not it is installed,
    and no debug or colour settings leak in from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if k not in ("BFCTL_DEBUG", "FORCE_COLOR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    # plan and apply ask Google before Pulumi runs; tests of the stand-in `pulumi` have no Google
    # to ask (test_gcp_doctor.py removes this to test the preflight)
    env["BFCTL_SKIP_PREFLIGHT"] = "1"
    return env


@pytest.fixture
def monitor() -> Iterator[Any]:
    """Pulumi's runtime on unit-test mocks, recording what a program registers (gcp tests)."""
    from gcp_mocks import mocked

    with mocked() as recording:
        yield recording


@pytest.fixture
def destroyed(bfctl_env: dict[str, str]) -> Iterator[list[Path]]:
    """Projects to destroy after the test (their databases and emulators are real processes)."""
    from support import run_bfctl

    projects: list[Path] = []
    yield projects
    for project in projects:
        code, out = run_bfctl(["destroy", "--yes"], project, bfctl_env)
        assert code == 0, out


@pytest.fixture(autouse=True)
def _engines_of_this_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Databases that module-level engines were made for belong to the one flow a bfctl process
    loads; tests load many flows in one process, so each test starts with none."""
    from buildflow.dependencies import sqlalchemy

    monkeypatch.setattr(sqlalchemy, "_ENGINE_DATABASES", [])
