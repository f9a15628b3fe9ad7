"""The image's entrypoint (``python -P -m bfctl.container TARGET``) outside its happy path: what
it is given wrong, and a flow that cannot load, end with a message and an exit code, never a
traceback. Serving through it is tests/test_cloud_run_contract.py's and
tests/test_cold_start_imports.py's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import HELLO_FLOW, make_project


def _entrypoint(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-P", "-m", "bfctl.container", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=60,
    )
    return done.returncode, done.stdout


def _deployed(bfctl_env: dict[str, str], **more: str) -> dict[str, str]:
    outputs = json.dumps({"target": "gcp", "outputs": {}})
    return {**bfctl_env, "K_SERVICE": "hello", "BUILDFLOW_OUTPUTS": outputs, **more}


def test_it_takes_the_flow_and_nothing_else(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = make_project(tmp_path / "hello", {"main.py": HELLO_FLOW})
    for args in ([], ["main.py:app", "--port", "8080"], ["--help"]):
        code, output = _entrypoint(args, project, _deployed(bfctl_env))
        assert code == 2, output
        assert output.startswith("Error: usage: python -P -m bfctl.container TARGET"), output


def test_a_worker_count_that_is_not_one_is_named(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = make_project(tmp_path / "hello", {"main.py": HELLO_FLOW})
    for value in ("two", "0"):
        code, output = _entrypoint(["main.py:app"], project, _deployed(bfctl_env, BFCTL_WORKERS=value))
        assert code == 2, output
        assert output.strip() == f"Error: BFCTL_WORKERS={value!r} is not a number of worker processes (1 or more)"


def test_a_flow_that_cannot_load_is_one_json_error_line(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    """As ``bfctl serve`` reports it on Cloud Run: one JSON log entry, exit 1."""
    project = make_project(tmp_path / "hello", {"main.py": HELLO_FLOW})
    code, output = _entrypoint(["missing.py:app"], project, _deployed(bfctl_env))
    assert code == 1, output
    [line] = output.splitlines()
    entry = json.loads(line)
    assert entry["severity"] == "ERROR"
    assert entry["message"].startswith("Error: ") and "missing.py" in entry["message"]
    assert "Traceback" not in output
