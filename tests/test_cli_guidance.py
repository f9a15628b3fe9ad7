"""What bfctl tells users to do next when a command cannot go on: each suggestion is a command
that works as printed (its own options, the target it was run for)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import HELLO_FLOW, bfctl_run, write

#: A flow whose one resource the local target makes in a moment: a collector's DuckDB table.
TABLE_FLOW = """
import dataclasses

from buildflow import Flow
from buildflow.io.duckdb import DuckDBTable

app = Flow()


@dataclasses.dataclass
class Row:
    name: str


@app.collector("/rows", method="POST", sink=DuckDBTable(database="rows.duckdb", table="rows"))
def collect(row: Row) -> Row:
    return row
"""

#: A flow with one Cloud Storage bucket and nothing to deploy: the gcp target's smallest stack.
BUCKET_FLOW = """
from buildflow import Flow
from buildflow.io.gcp import GCSBucket

app = Flow()
app.manage(GCSBucket(project_id="my-project", bucket_name="my-project-uploads"))
"""
GCP = ["--target", "gcp", "--gcp-project", "my-project", "--gcp-region", "us-central1"]


def test_apply_and_destroy_without_a_terminal_say_in_english_what_to_do(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    write(tmp_path / "main.py", TABLE_FLOW)

    refused = bfctl_run(["apply", "main:app"], tmp_path, bfctl_env)
    assert refused.returncode == 1
    assert "Error: Applying needs confirmation: run with --yes, or in a terminal" in refused.stderr

    assert bfctl_run(["apply", "main:app", "--yes"], tmp_path, bfctl_env).returncode == 0
    refused = bfctl_run(["destroy"], tmp_path, bfctl_env)
    assert refused.returncode == 1
    assert "Error: Destroying needs confirmation: run with --yes, or in a terminal" in refused.stderr
    assert bfctl_run(["destroy", "--yes"], tmp_path, bfctl_env).returncode == 0


@pytest.mark.parametrize(
    ("command", "example"),
    [
        (["serve"], "bfctl serve main:app"),
        (["plan"], "bfctl plan main:app"),
        (["routes"], "bfctl routes main:app"),
        (["db", "upgrade"], "bfctl db upgrade --flow main:app"),
        (["db", "revision", "-m", "first"], "bfctl db revision --flow main:app"),
    ],
)
def test_a_command_without_a_flow_shows_how_it_takes_one(
    command: list[str], example: str, tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    result = bfctl_run(command, tmp_path, bfctl_env)

    assert result.returncode == 1
    assert f"Pass a target, e.g. `{example}`" in result.stderr
    assert "Traceback" not in result.stderr


def test_plan_on_gcp_without_the_pulumi_program_says_so_before_any_passphrase(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    write(tmp_path / "main.py", BUCKET_FLOW)
    (tmp_path / "bin").mkdir()  # a PATH without `pulumi`
    env = {k: v for k, v in bfctl_env.items() if not k.startswith("PULUMI_CONFIG_PASSPHRASE")}

    result = bfctl_run(["plan", "main:app", *GCP], tmp_path, {**env, "PATH": str(tmp_path / "bin")})

    assert result.returncode == 1
    assert "the Pulumi CLI (the `pulumi` program) is not on PATH" in result.stderr
    assert "passphrase" not in result.stderr.lower()


def test_serve_on_gcp_before_apply_suggests_commands_for_gcp(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", BUCKET_FLOW)

    result = bfctl_run(["serve", "main:app", "--port", "0", *GCP], tmp_path, bfctl_env)

    assert result.returncode == 1
    flags = "--target gcp --gcp-project my-project --gcp-region us-central1"
    assert f"Run `bfctl apply {flags}` first, or `bfctl serve {flags} --apply` to do both." in result.stderr


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.create_server(("127.0.0.1", 0)) as other:
        yield other.getsockname()[1]


def test_serve_on_a_taken_port_suggests_a_free_port_and_port_0(
    taken_port: int, tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    write(tmp_path / "main.py", HELLO_FLOW)

    result = bfctl_run(["serve", "main:app", "--port", str(taken_port)], tmp_path, bfctl_env)

    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{taken_port}: another program listens there" in result.stderr
    suggested = re.search(r"`--port (\d+)` \(free now\), or `--port 0` to take any free port", result.stderr)
    assert suggested is not None, result.stderr
    assert int(suggested[1]) != taken_port


def test_dev_stops_when_another_program_holds_its_port(
    taken_port: int, tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    write(tmp_path / "main.py", HELLO_FLOW)

    result = bfctl_run(["dev", "main:app", "--port", str(taken_port)], tmp_path, bfctl_env)

    assert result.returncode == 1
    assert f"another program holds 127.0.0.1:{taken_port}, and no change to the flow can free it" in result.stderr
    assert "`--port 0`" in result.stderr
    assert "Waiting for a change" not in result.stderr
