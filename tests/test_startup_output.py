"""What serving prints before the first request, from real subprocesses: the routes of a flow run
as a script (``python main.py``) as ``bfctl serve`` lists them, the worker count, and a stopped
local database that serving starts again."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from support import HELLO_FLOW, REPO_ROOT, run_bfctl, serving, write

#: A BuildFlow 0.3 project's main.py: a service, a POST endpoint, and ``app.run()`` under ``__main__``.
SCRIPT = (
    HELLO_FLOW
    + """

@service.endpoint("/orders", method="POST")
def create_order(order: dict) -> dict:
    return order


if __name__ == "__main__":
    app.run(serve_port=0)
"""
)


def _shown(server_lines: list[str]) -> list[str]:
    """The announcement: from the "Serving" line to "Press Ctrl+C to stop.", less the dashboard's line."""
    start = next(i for i, line in enumerate(server_lines) if line.startswith("Serving "))
    end = server_lines.index("Press Ctrl+C to stop.", start)
    return [line for line in server_lines[start : end + 1] if not line.startswith("Dashboard on ")]


def test_a_flow_run_as_a_script_lists_its_routes(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", SCRIPT)
    with serving([], tmp_path, bfctl_env, command=[sys.executable, "main.py"]) as server:
        server.wait_for(lambda line: line == "Press Ctrl+C to stop.")
        assert server.get("/hello") == (200, '"hello"')
        assert server.stop() == 0

    assert _shown(server.lines) == [
        f"Serving buildflow-app on {server.url}",
        f"  GET   {server.url}/hello",
        f"  POST  {server.url}/orders",
        "Press Ctrl+C to stop.",
    ]


def test_serve_shows_the_worker_count(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", HELLO_FLOW)
    with serving(["main:app", "--port", "0", "--workers", "2"], tmp_path, bfctl_env) as server:
        server.wait_for(lambda line: line == "Press Ctrl+C to stop.")
        assert server.stop() == 0

    assert _shown(server.lines) == [
        f"Serving main:app on {server.url}",
        "  2 worker processes",
        f"  GET  {server.url}/hello",
        "Press Ctrl+C to stop.",
    ]


def test_serve_says_it_started_a_stopped_local_database(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    from bfctl.providers.local.postgres import EmbeddedPostgres
    from bfctl.providers.state import StateStore

    notes = tmp_path / "notes"
    shutil.copytree(REPO_ROOT / "examples" / "notes", notes, ignore=shutil.ignore_patterns(".buildflow"))
    code, out = run_bfctl(["apply", "--yes"], notes, bfctl_env)
    assert code == 0, out
    try:
        record = StateStore(notes, "local", "dev").load().resources["my-project:notes-db"]
        database = EmbeddedPostgres(notes / record.private["directory"])
        database.stop()  # as after a reboot
        assert database.running_port() is None

        with serving(["--port", "0", "--no-access-log"], notes, bfctl_env) as server:
            assert server.call("GET", "/notes") == (200, "[]")
            assert server.stop() == 0
        port = database.running_port()
        assert port is not None
        started = f"Started the PostgreSQL server of my-project:notes-db (on port {port}): it was stopped."
        assert started in server.lines, server.output

        # running already: nothing to say
        with serving(["--port", "0", "--no-access-log"], notes, bfctl_env) as server:
            assert server.stop() == 0
        assert not [line for line in server.lines if line.startswith("Started ")], server.output
    finally:
        code, out = run_bfctl(["destroy", "--yes"], notes, bfctl_env)
        assert code == 0, out


def test_one_worker_is_not_announced(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", HELLO_FLOW)
    with serving(["main:app", "--port", "0", "--workers", "1"], tmp_path, bfctl_env) as server:
        server.wait_for(lambda line: line == "Press Ctrl+C to stop.")
        assert server.stop() == 0
    assert not [line for line in server.lines if "worker" in line], server.output
