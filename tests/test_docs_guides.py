"""The guides' examples (docs_src/guides/) run as the pages show them.

Each example folder is copied into a new project, as a reader would copy it, and its console
transcripts (``*.out``) are replayed there with real ``bfctl`` subprocesses: what the page shows
must be what comes back.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from docs_transcripts import DOCS_SRC, matches, replay, steps

GUIDES = DOCS_SRC / "guides"


def project_of(example: str, tmp_path: Path) -> Path:
    """The example's folder copied into a new project (transcripts stay behind)."""
    project = tmp_path / example
    shutil.copytree(GUIDES / example, project, ignore=shutil.ignore_patterns("*.out", "__pycache__"))
    return project


def test_testing_guide_runs_its_tests_with_pytest(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    """The test file of the testing guide passes under pytest run in the project folder."""
    project = project_of("testing", tmp_path)
    (step,) = steps((GUIDES / "testing" / "pytest.out").read_text())
    argv = step.command.split()
    assert argv[:3] == ["python", "-m", "pytest"]
    result = subprocess.run(
        [sys.executable, *argv[1:], "-p", "no:cacheprovider"],
        cwd=project,
        env=bfctl_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    timed = re.compile(r" in \d+\.\d+s$")
    shown, printed = ([timed.sub("", line) for line in lines] for lines in (step.expected, result.stdout.splitlines()))
    assert matches(shown, printed), result.stdout


def test_collectors_guide(tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]) -> None:
    """Rows of three collectors and a sink dependency are committed to the table the endpoint counts."""
    project = project_of("collectors", tmp_path)
    destroyed.append(project)
    replay(GUIDES / "collectors" / "collectors.out", project, bfctl_env)
