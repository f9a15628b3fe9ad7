"""The light install: `make demo` installs the core alone, and a flow that needs an optional
extra that is missing is refused at start-up with the extra to install."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from support import REPO_ROOT, bfctl_run, write

PARQUET_FLOW = """
import dataclasses

from buildflow import Flow
from buildflow.io.local import File
from buildflow.types.portable import FileFormat

app = Flow()


@dataclasses.dataclass
class Event:
    name: str


@app.collector("/events", method="POST", sink=File("out/events.parquet", FileFormat.PARQUET))
def collect(event: Event) -> Event:
    return event
"""


def pip_installs(goal: str, venv: Path) -> list[str]:
    """The ``pip install -e`` lines that ``make <goal>`` runs for a new ``venv`` (a dry run)."""
    make = shutil.which("make")
    assert make is not None
    dry_run = subprocess.run(
        [make, "-n", goal, f"VENV={venv}"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return [line for line in dry_run.stdout.splitlines() if "pip install -e" in line]


def test_make_demo_installs_the_core_without_extras(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    assert pip_installs("demo", venv) == [f"{venv}/bin/python -m pip install -e ."]


def test_make_install_still_installs_every_extra(tmp_path: Path) -> None:
    installs = pip_installs("install", tmp_path / "venv")
    assert len(installs) == 1, installs
    extras = installs[0].split("[", 1)[1].split("]", 1)[0].split(",")
    assert {"dev", "gcp", "parquet", "bench"} <= set(extras), installs


def test_a_parquet_sink_without_pyarrow_is_refused_at_start_with_the_extra_to_install(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    # an install without the parquet extra: `import pyarrow` fails as it does there
    write(tmp_path / "no_extras" / "pyarrow" / "__init__.py", 'raise ModuleNotFoundError("pyarrow", name="pyarrow")')
    env = {**bfctl_env, "PYTHONPATH": os.pathsep.join([str(tmp_path / "no_extras"), bfctl_env["PYTHONPATH"]])}
    project = tmp_path / "events"
    write(project / "main.py", PARQUET_FLOW)

    result = bfctl_run(["serve", "main:app", "--port", "0"], project, env, timeout=30)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Serving" not in result.stdout
    assert "Traceback" not in result.stderr
    assert "events.parquet" in result.stderr and "pyarrow" in result.stderr
    assert "pip install 'bfctl[parquet]'" in result.stderr and "make install" in result.stderr
