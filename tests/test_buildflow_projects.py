"""Projects written for BuildFlow 0.3, run unchanged through real ``bfctl`` subprocesses: a flow
module that makes its tables at import with ``engine(db, user, password)``, and flows that use
primitives they never pass to ``app.manage``."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest
from fakes import EVENTS, pulumi_env

# The Cloud SQL connector stand-in and the embedded PostgreSQL it reaches.
from fakes.connector import CONNECTION_NAME, PASSWORD, StandInConnector, connectors, declare, server  # noqa: F401
from sqlalchemy import text
from support import (
    ENTRY_ENDPOINTS,
    ENTRY_MODEL,
    JOURNAL_DATABASE,
    REPO_ROOT,
    bfctl_run,
    journal_project,
    run_bfctl,
    serving,
    wait_until,
    write,
)

from buildflow.deployed import OUTPUTS_ENV
from buildflow.io.gcp import CloudSQLDatabase

#: As BuildFlow's templates wrote it: models, then the tables made at import, then the flow.
TEMPLATE = (
    """
import dataclasses

from sqlalchemy import Column, Integer, String, select
from sqlalchemy.orm import declarative_base

from buildflow import Flow
from buildflow.dependencies.sqlalchemy import SessionDepBuilder, engine
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings

Base = declarative_base()
"""
    + ENTRY_MODEL
    + "\n"
    + JOURNAL_DATABASE
    + """
engine = engine(database, "writer", "wr1ter-pw")
Base.metadata.create_all(engine)

app = Flow()
MANAGE
SESSIONS
service = app.service()
"""
    + ENTRY_ENDPOINTS
)


SESSION_DEP = 'DB = SessionDepBuilder(db_primitive=database, db_user="writer", db_password="wr1ter-pw")'


def _project(tmp_path: Path, source: str) -> Path:
    return journal_project(tmp_path, source.replace("SESSIONS", SESSION_DEP))


def test_tables_made_at_import_by_buildflows_engine(
    tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]
) -> None:
    project = _project(tmp_path, TEMPLATE.replace("MANAGE", "app.manage(instance, database)"))
    destroyed.append(project)

    code, out = run_bfctl(["plan", "--detailed-exitcode"], project, bfctl_env)  # nothing exists yet
    assert code == 2, out
    assert "my-project:journal-db/users/writer" in out  # the user the engine and the sessions log in as
    code, out = run_bfctl(["apply", "--yes"], project, bfctl_env)
    assert code == 0, out

    with serving(["--port", "0", "--no-access-log"], project, bfctl_env) as served:
        assert served.call("GET", "/entries") == (200, "[]")  # the table create_all made at import
        assert served.call("POST", "/entries", b'{"title": "first"}') == (200, '"added"')
        assert served.call("GET", "/entries") == (200, '["first"]')
        assert served.stop() == 0
    assert "wr1ter-pw" not in served.output


#: BuildFlow's templates caught the error of a database not made yet.
GUARDED = """try:
    Base.metadata.create_all(engine)
except Exception:
    pass"""


@pytest.mark.parametrize("create_all", ["as is", "guarded"])
def test_serve_apply_on_a_fresh_stack_makes_the_tables_at_import(
    tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path], create_all: str
) -> None:
    source = TEMPLATE.replace("MANAGE", "app.manage(instance, database)")
    if create_all == "guarded":
        source = source.replace("Base.metadata.create_all(engine)", GUARDED)
    project = _project(tmp_path, source)
    destroyed.append(project)

    with serving(["--apply", "--port", "0", "--no-access-log"], project, bfctl_env) as served:
        assert served.call("GET", "/entries") == (200, "[]")
        assert served.stop() == 0
    assert "Apply complete" in served.output


#: Sessions on the module's engine rather than from ``SessionDepBuilder``, as some projects wrote them.
ENGINE_SESSIONS = """
from sqlalchemy.orm import Session

from buildflow.dependencies import Scope, dependency


@dependency(Scope.PROCESS)
class DB:
    def __init__(self) -> None:
        self.session = Session(engine)
"""


@pytest.mark.parametrize("sessions", ["SessionDepBuilder", "module engine"])
def test_an_unmanaged_cloud_sql_database_is_named_then_made_by_apply(
    tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path], sessions: str
) -> None:
    source = TEMPLATE.replace("MANAGE", "")  # used, never managed
    if sessions == "module engine":
        source = source.replace("SESSIONS", ENGINE_SESSIONS)
    project = _project(tmp_path, source)
    destroyed.append(project)

    code, out = run_bfctl(["serve", "--port", "0"], project, bfctl_env)
    assert code == 1
    assert "Cloud SQL database 'my-project:journal-db.journal' is not applied on the local target" in out
    assert "bfctl apply" in out and "wr1ter-pw" not in out

    code, out = run_bfctl(["apply", "--yes"], project, bfctl_env)  # the local target makes what is used
    assert code == 0 and "my-project:journal-db.journal" in out, out
    with serving(["--port", "0", "--no-access-log"], project, bfctl_env) as served:
        assert served.call("GET", "/entries") == (200, "[]")
        assert served.stop() == 0


UNMANAGED = """
import dataclasses

from buildflow import Flow
from buildflow.dependencies.sink import SinkDependencyBuilder
from buildflow.io.duckdb import DuckDBTable
from buildflow.io.gcp import GCPPubSubTopic
from buildflow.io.local import File, LocalFileChangeStream
from buildflow.types.local import LocalFileChangeEvent
from buildflow.types.portable import FileFormat

app = Flow()
service = app.service()


@dataclasses.dataclass
class Row:
    name: str


@app.collector("/rows", method="POST", sink=DuckDBTable(database="data/rows.duckdb", table="rows"))
def collect(row: Row) -> Row:
    return row


@app.consumer(source=LocalFileChangeStream("incoming"), sink=File("seen/files.csv", FileFormat.CSV))
def seen(event: LocalFileChangeEvent) -> Row:
    return Row(name=event.file_path.rsplit("/", 1)[-1])


Events = SinkDependencyBuilder(GCPPubSubTopic("my-project", "events"))


@service.endpoint("/events", method="POST")
async def publish(row: Row, events: Events) -> str:
    await events.push(row)
    return "sent"
"""


def test_unmanaged_local_primitives_are_made_when_served(
    tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]
) -> None:
    project = _project(tmp_path, UNMANAGED)
    destroyed.append(project)

    with serving(["--port", "0", "--no-access-log"], project, bfctl_env) as served:  # no apply first
        made = next(line for line in served.lines if line.startswith("Made on first use"))
        for rid in ("duckdb:data/rows.duckdb:rows", "projects/my-project/topics/events", "file:seen/files.csv"):
            assert rid in made, served.output
        assert served.call("POST", "/rows", b'{"name": "collected"}') == (200, '{"success":true}')
        assert served.call("POST", "/events", b'{"name": "published"}') == (200, '"sent"')
        write(project / "incoming" / "dropped.json", "{}")

        def a_row_names_the_dropped_file() -> bool:
            return any("dropped.json" in f.read_text() for f in (project / "seen").glob("files-*.csv"))

        wait_until(a_row_names_the_dropped_file)
        assert served.stop() == 0
    with duckdb.connect(str(project / "data" / "rows.duckdb"), read_only=True) as db:
        assert db.execute("select name from rows").fetchall() == [("collected",)]

    with serving(["--port", "0", "--no-access-log"], project, bfctl_env) as served:  # made once
        assert not any(line.startswith("Made on first use") for line in served.lines), served.output
        assert served.stop() == 0


BUCKET_ENDPOINT = """
from buildflow.dependencies.bucket import BucketDependencyBuilder
from buildflow.io.gcp import GCSBucket

Reports = BucketDependencyBuilder(GCSBucket("my-project", "journal-reports"))


@service.endpoint("/report", method="GET")
async def report(reports: Reports) -> list:
    return await reports.bucket.list()
"""


def test_gcp_plan_expects_unmanaged_primitives_to_exist(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = tmp_path / "notes"
    shutil.copytree(REPO_ROOT / "examples" / "notes", project, ignore=shutil.ignore_patterns(".buildflow"))
    notes = (project / "main.py").read_text()
    main = 'if __name__ == "__main__":'
    write(project / "main.py", notes.replace(main, f"{BUCKET_ENDPOINT}\n{main}"))
    env = pulumi_env(
        bfctl_env,
        tmp_path / "bin",
        PULUMI_CONFIG_PASSPHRASE="a passphrase",
        FAKE_PULUMI_LOG=str(tmp_path / "pulumi-calls.jsonl"),
        FAKE_PULUMI_SCENARIO=str(EVENTS / "notes_create.json"),
    )
    result = bfctl_run(["plan", "--target", "gcp", "--detailed-exitcode"], project, env)

    assert result.returncode == 2, result.stderr
    assert "GCSBucket gcs://journal-reports is used, not managed: expected to exist." in result.stdout.splitlines()
    assert "create    gcp.storage.Bucket" not in result.stdout
    assert "Traceback" not in result.stderr


def _deployed_on_gcp(monkeypatch: pytest.MonkeyPatch) -> tuple[CloudSQLDatabase, CloudSQLDatabase]:
    """Databases notes and audit, with the outputs a container on gcp is given: notes applied, audit
    not managed."""
    _, notes, audit = declare()
    applied = {notes.primitive_id(): {"connection_name": CONNECTION_NAME, "database": "notes"}}
    monkeypatch.setenv(OUTPUTS_ENV, json.dumps({"target": "gcp", "outputs": applied}))
    return notes, audit


def test_buildflows_engine_on_gcp_connects_through_the_connector_at_first_use(
    connectors: list[StandInConnector],  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from buildflow.dependencies.sqlalchemy import async_engine, engine

    notes, audit = _deployed_on_gcp(monkeypatch)

    made = [engine(notes, "notes", PASSWORD), engine(audit, "notes", PASSWORD)]  # audit: not managed
    assert connectors == []  # made, not connected
    for database in made:
        with database.connect() as conn:
            assert conn.execute(text("select 1")).scalar_one() == 1
        database.dispose()

    async def with_async_engine() -> str:
        made_async = await async_engine(notes, "notes", PASSWORD)  # BuildFlow's is a coroutine
        async with made_async.connect() as conn:
            database = (await conn.execute(text("select current_database()"))).scalar_one()
        await made_async.dispose()
        return str(database)

    assert asyncio.run(with_async_engine()) == "notes"
    calls = [(name, driver, args["db"]) for c in connectors for name, driver, args in c.calls]
    assert calls == [
        (CONNECTION_NAME, "pg8000", "notes"),
        (CONNECTION_NAME, "pg8000", "audit"),
        (CONNECTION_NAME, "asyncpg", "notes"),
    ]


def test_forked_workers_do_not_share_what_the_import_connected(
    connectors: list[StandInConnector],  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from buildflow.dependencies.sqlalchemy import engine

    notes, _ = _deployed_on_gcp(monkeypatch)
    made = engine(notes, "notes", PASSWORD)
    with made.connect() as conn:  # as create_all does at import, before serve forks its workers
        conn.execute(text("select 1"))
    assert made.pool.checkedin() == 1 and len(connectors) == 1

    pid = os.fork()
    if pid == 0:  # a worker: a pool of its own, and a connector of its own
        code = 1
        try:
            pooled = made.pool.checkedin()
            with made.connect() as conn:
                answer = conn.execute(text("select 1")).scalar_one()
            code = 0 if (pooled, answer, len(connectors)) == (0, 1, 2) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert made.pool.checkedin() == 1  # the parent's connection is still its own
    made.dispose()
