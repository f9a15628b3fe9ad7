"""The suite's own check (conftest.py, leftovers.py): a test module that leaves a process running
fails, naming the process and the test that started it, and the process is ended."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psutil

TESTS = Path(__file__).resolve().parent

LEAKY = """
import subprocess


def test_starts_a_detached_server():
    subprocess.Popen(["sleep", "600"], start_new_session=True)


def test_stops_what_it_starts():
    process = subprocess.Popen(["sleep", "600"], start_new_session=True)
    process.kill()
    process.wait()
"""


def _run_module(directory: Path, source: str) -> subprocess.CompletedProcess[str]:
    for name in ("conftest.py", "leftovers.py"):
        shutil.copy(TESTS / name, directory / name)
    (directory / "test_module.py").write_text(source)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_module.py"]
    env = {**os.environ, "BFCTL_TEST_SETTLE": "0.5"}  # its leftover never goes: waiting longer shows nothing more
    return subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_a_module_that_leaves_a_process_running_fails_and_the_process_is_ended(tmp_path: Path) -> None:
    result = _run_module(tmp_path, LEAKY)

    assert result.returncode == 1, result.stdout
    assert "2 passed, 1 error" in result.stdout, result.stdout
    found = re.search(r"pid (\d+), started by test_starts_a_detached_server: sleep 600", result.stdout)
    assert found is not None, result.stdout
    assert "test_module.py left 1 process(es) running (now ended)" in result.stdout
    assert not psutil.pid_exists(int(found[1])) or psutil.Process(int(found[1])).status() == psutil.STATUS_ZOMBIE


def test_a_module_that_stops_what_it_starts_passes(tmp_path: Path) -> None:
    result = _run_module(tmp_path, LEAKY.replace("def test_starts_a_detached_server", "def _not_a_test"))

    assert result.returncode == 0, result.stdout
    assert "1 passed" in result.stdout, result.stdout
