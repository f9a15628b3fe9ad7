"""``python main.py`` with ``app.run()``, as BuildFlow 0.3 projects were run: real subprocesses,
a real embedded PostgreSQL, real HTTP. The flow is served as ``bfctl serve`` serves it on the
local target with the default stack, including what its module does at import."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from support import ENTRY_ENDPOINTS, ENTRY_MODEL, JOURNAL_DATABASE, journal_project, run_bfctl, serving

from buildflow.deployed import OUTPUTS_ENV

#: As BuildFlow's templates wrote a project: tables made at import, a DuckDB collector sink,
#: sessions from ``SessionDepBuilder``, and ``app.run()`` under ``__main__``.
JOURNAL = (
    """
import dataclasses

from sqlalchemy import Column, Integer, String, select
from sqlalchemy.orm import declarative_base

from buildflow import Flow
from buildflow.dependencies.sqlalchemy import SessionDepBuilder, engine
from buildflow.io.duckdb import DuckDBTable
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance
from buildflow.secrets import Secret
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings

Base = declarative_base()
PASSWORD = "wr1ter-pw"
"""
    + ENTRY_MODEL
    + "\n"
    + JOURNAL_DATABASE
    + """
CREATE_ALL

app = Flow()
app.manage(instance, database)
service = app.service()
DB = SessionDepBuilder(db_primitive=database, db_user="writer", db_password=PASSWORD)


@dataclasses.dataclass
class Visit:
    page: str


@app.collector(route="/visits", method="POST", sink=DuckDBTable(database="data/visits.duckdb", table="visits"))
def visit(v: Visit) -> Visit:
    return v
"""
    + ENTRY_ENDPOINTS
    + """

if __name__ == "__main__":
    app.run(serve_port=0)
"""
)

CREATE_ALL = 'Base.metadata.create_all(engine(database, "writer", PASSWORD))'
#: BuildFlow's templates caught the error of a database not made yet.
GUARDED = f"""try:
    {CREATE_ALL}
except Exception:
    pass"""

#: Only a sink nobody applied, served with ``block=False`` as BuildFlow allowed.
VISITS = """
import asyncio
import dataclasses

from buildflow import Flow
from buildflow.io.duckdb import DuckDBTable

app = Flow()


@dataclasses.dataclass
class Visit:
    page: str


@app.collector(route="/visits", method="POST", sink=DuckDBTable(database="data/visits.duckdb", table="visits"))
def visit(v: Visit) -> Visit:
    return v


if __name__ == "__main__":
    asyncio.run(app.run(serve_port=0, block=False))
"""

#: As BuildFlow's own end-to-end tests ran a flow: ``run(block=False)`` in a task, requests from
#: the same process, then ``await app._drain()`` before reading what the sink wrote.
DRAINED = """
import asyncio
import dataclasses
import json
import time
import urllib.error
import urllib.request

import duckdb

from buildflow import Flow
from buildflow.io.duckdb import DuckDBTable

app = Flow()


@dataclasses.dataclass
class Visit:
    page: str


@app.collector(route="/visits", method="POST", sink=DuckDBTable(database="data/visits.duckdb", table="visits"))
def visit(v: Visit) -> Visit:
    return v


def post() -> int:
    request = urllib.request.Request(
        "http://127.0.0.1:PORT/visits", data=b'{"page": "/home"}', headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


async def main() -> None:
    serving = asyncio.ensure_future(app.run(serve_port=PORT, block=False))
    deadline = time.monotonic() + 30
    while True:  # until the server answers
        try:
            status = await asyncio.to_thread(post)
            break
        except urllib.error.URLError as error:
            if not isinstance(error.reason, ConnectionRefusedError) or serving.done() or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    drained = await app._drain()
    with duckdb.connect("data/visits.duckdb", read_only=True) as db:
        rows = db.execute("select page from visits").fetchall()
    print(json.dumps({"status": status, "drained": drained, "exit": serving.result(), "rows": rows}))


asyncio.run(main())
"""

MAIN_PY = [sys.executable, "main.py"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _visits(project: Path) -> list[tuple[str]]:
    with duckdb.connect(str(project / "data" / "visits.duckdb"), read_only=True) as db:
        return db.execute("select page from visits").fetchall()


@pytest.mark.parametrize("password", ["literal", "Secret"])
def test_python_main_serves_the_applied_local_stack(
    tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path], password: str
) -> None:
    """Stopped servers are started and the stack's Secrets read, at import as when serving."""
    from providers.local.postgres import EmbeddedPostgres

    source = JOURNAL.replace("CREATE_ALL", CREATE_ALL)
    if password == "Secret":  # generated by apply, kept in the local stack
        source = source.replace('PASSWORD = "wr1ter-pw"', 'PASSWORD = Secret("journal-writer")')
    project = journal_project(tmp_path, source)
    destroyed.append(project)
    code, out = run_bfctl(["apply", "--yes"], project, bfctl_env)
    assert code == 0, out
    EmbeddedPostgres(project / ".buildflow" / "local" / "dev" / "my-project_journal-db").stop()  # as after a reboot

    with serving([], project, bfctl_env, command=MAIN_PY) as served:
        assert served.call("GET", "/entries") == (200, "[]")  # the table create_all made at import
        assert served.call("POST", "/entries", b'{"title": "first"}') == (200, '"added"')
        assert served.call("GET", "/entries") == (200, '["first"]')
        assert served.call("POST", "/visits", b'{"page": "/home"}') == (200, '{"success":true}')
        assert served.stop() == 0
    assert _visits(project) == [("/home",)]
    secret = project / ".buildflow" / "local" / "dev" / "secrets" / "journal-writer"
    assert secret.is_file() == (password == "Secret")  # generated by apply
    never_shown = secret.read_text() if secret.is_file() else "wr1ter-pw"
    assert never_shown not in served.output


@pytest.mark.parametrize("create_all", ["as is", "guarded"])
def test_python_main_before_apply_says_what_to_apply(
    tmp_path: Path, bfctl_env: dict[str, str], create_all: str
) -> None:
    """At import (create_all as is) or once ``app.run()`` reads the stack (the error caught)."""
    project = journal_project(tmp_path, JOURNAL.replace("CREATE_ALL", CREATE_ALL if create_all == "as is" else GUARDED))

    ran = subprocess.run(MAIN_PY, cwd=project, env=bfctl_env, capture_output=True, text=True, timeout=60, check=False)

    assert ran.returncode != 0
    assert "Traceback" not in ran.stdout
    error = ran.stderr.strip()
    assert error.startswith("Error: ") and "\n" not in error, error  # one paragraph: no traceback
    assert "my-project:journal-db.journal" in error and "not applied on the local target" in error
    assert "`bfctl apply`" in error and "wr1ter-pw" not in error


def test_python_main_makes_unmanaged_local_sinks_on_first_use(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = journal_project(tmp_path, VISITS)

    with serving([], project, bfctl_env, command=MAIN_PY) as served:
        assert served.call("POST", "/visits", b'{"page": "/home"}') == (200, '{"success":true}')
        assert served.stop() == 0
    assert _visits(project) == [("/home",)]


def test_buildflows_drain_stops_what_run_serves_without_blocking(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = journal_project(tmp_path, DRAINED.replace("PORT", str(_free_port())))

    ran = subprocess.run(MAIN_PY, cwd=project, env=bfctl_env, capture_output=True, text=True, timeout=60, check=False)

    assert ran.returncode == 0, ran.stderr
    reported = json.loads(ran.stdout.splitlines()[-1])
    assert reported == {"status": 200, "drained": True, "exit": 0, "rows": [["/home"]]}, ran.stdout


def test_python_main_in_a_deployed_container_serves_with_the_outputs_it_is_given(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    from buildflow.io.duckdb import DuckDBTable

    project = journal_project(tmp_path, VISITS)
    given = tmp_path / "given.duckdb"
    sink = DuckDBTable(database="data/visits.duckdb", table="visits").primitive_id()
    outputs = {sink: {"engine": "duckdb", "database": str(given), "table": "visits"}}
    env = {**bfctl_env, OUTPUTS_ENV: json.dumps({"target": "local", "outputs": outputs})}

    with serving([], project, env, command=MAIN_PY) as served:
        assert served.call("POST", "/visits", b'{"page": "/home"}') == (200, '{"success":true}')
        assert served.stop() == 0
    with duckdb.connect(str(given), read_only=True) as db:
        assert db.execute("select page from visits").fetchall() == [("/home",)]
    assert not (project / ".buildflow").exists()  # nothing applied nor read here
