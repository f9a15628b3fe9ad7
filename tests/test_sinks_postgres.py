"""CloudSQLTable: COPY into the embedded PostgreSQL the local target applies."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pg8000.native
import pytest

from bfctl.providers.local import LocalProvider
from bfctl.providers.local.postgres import EmbeddedPostgres
from bfctl.runtime.sinks import RowsRejected, schema_from_type, writer_for
from bfctl.runtime.sinks.base import SinkWriter
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance, CloudSQLTable
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings


@dataclasses.dataclass
class Event:
    user: str
    n: int
    at: datetime.datetime
    tags: list[str]
    extra: dict[str, Any]
    raw: bytes | None = None


AT = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)


def events(count: int, start: int = 0) -> list[Event]:
    return [Event(f"u{i}", i, AT, ["a"], {"k": i}, b"\x00\x01") for i in range(start, start + count)]


def rows(writer: SinkWriter, objects: list[Any]) -> list[Any]:
    """Objects as the writer takes them: what its converter makes, as the runtime does."""
    convert = writer.converter_for(Event)
    return [convert(o) for o in objects]


@dataclasses.dataclass
class Stack:
    provider: LocalProvider
    database: CloudSQLDatabase
    events: CloudSQLTable
    late: CloudSQLTable  # declared without a schema: its writer creates it

    def outputs(self) -> ResourceOutputs:
        return ResourceOutputs(self.provider.outputs())

    def admin(self) -> Any:
        server = EmbeddedPostgres(self.provider.root / "my-project_sink-db")
        return server.admin(self.provider.outputs()["my-project:sink-db"]["port"], "app")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    instance = CloudSQLInstance(
        "sink-db", "my-project", CloudSQLDatabaseVersion.POSTGRES_15, CloudSQLInstanceSettings(tier="db-f1-micro"),
        "us-central1",
    )  # fmt: skip
    database = CloudSQLDatabase("app", instance)
    table = CloudSQLTable(database, "events").options(schema=Event)
    late = CloudSQLTable(database, "late_events")
    provider = LocalProvider(tmp_path_factory.mktemp("project"), "dev")
    provider.apply(provider.plan([instance, database, table, late]))
    yield Stack(provider, database, table, late)
    provider.destroy()


def run(writer: SinkWriter, *batches: list[Any]) -> None:
    async def go() -> None:
        await writer.start()
        try:
            for batch in batches:
                await writer.write(rows(writer, batch))
        finally:
            await writer.stop()

    asyncio.run(go())


def test_apply_made_the_table_and_a_sink_login_without_storing_its_password(stack: Stack) -> None:
    out = stack.provider.outputs()[stack.events.primitive_id()]
    assert stack.events.primitive_id() == "my-project:sink-db.app.events"
    assert out["engine"] == "postgres" and out["user"] == "buildflow_sink" and out["table"] == "events"
    password = Path(out["password_file"]).read_text()
    assert Path(out["password_file"]).stat().st_mode & 0o077 == 0
    assert password not in stack.provider.store.path.read_text()
    with stack.admin() as conn:
        owner = conn.run("SELECT tableowner FROM pg_tables WHERE tablename = 'events'")
    assert owner == [["cloudsqlsuperuser"]]


def test_copy_batches_land_with_their_types(stack: Stack) -> None:
    run(writer_for(stack.events, schema_from_type(Event), stack.outputs(), Path.cwd()), events(3), events(2, 3))
    with stack.admin() as conn:
        got = conn.run('SELECT "user", n, at, tags, extra, raw FROM events WHERE n < 5 ORDER BY n')
    assert len(got) == 5 and got[1] == ["u1", 1, AT, ["a"], {"k": 1}, b"\x00\x01"]


def test_a_row_the_table_refuses_is_named_and_nothing_is_written(stack: Stack) -> None:
    with stack.admin() as conn:
        conn.run("ALTER TABLE events ADD CONSTRAINT small CHECK (n < 1000)")
    writer = writer_for(stack.events, schema_from_type(Event), stack.outputs(), Path.cwd())

    async def go() -> None:
        await writer.start()
        with pytest.raises(RowsRejected, match="small") as refused:
            await writer.write(rows(writer, events(2, 100) + events(1, 5000) + events(1, 102)))
        assert refused.value.indexes == [2]
        await writer.write(rows(writer, events(1, 103)))  # the connection is still good
        await writer.stop()

    asyncio.run(go())
    with stack.admin() as conn:
        assert conn.run("SELECT n FROM events WHERE n >= 100 ORDER BY n") == [[103]]


def test_writer_creates_an_undeclared_table_and_survives_a_server_restart(stack: Stack) -> None:
    server = EmbeddedPostgres(stack.provider.root / "my-project_sink-db")
    writer = writer_for(stack.late, schema_from_type(Event), stack.outputs(), Path.cwd())

    async def go() -> None:
        await writer.start()
        await writer.write(rows(writer, events(1)))
        server.stop()
        with pytest.raises(Exception) as down:  # noqa: PT011 - any error but RowsRejected
            await writer.write(rows(writer, events(1, 1)))
        assert not isinstance(down.value, RowsRejected)  # the client gets a 503, not a 422
        stack.provider.ensure_running()
        await writer.write(rows(writer, events(1, 2)))
        await writer.stop()

    asyncio.run(go())
    with stack.admin() as conn:
        assert conn.run("SELECT n FROM late_events ORDER BY n") == [[0], [2]]
        assert conn.run("SELECT tableowner FROM pg_tables WHERE tablename = 'late_events'") == [["cloudsqlsuperuser"]]
    with pytest.raises(pg8000.native.DatabaseError), stack.admin() as conn:
        conn.run("INSERT INTO late_events (\"user\") VALUES ('x')")  # NOT NULL columns came from the type


def test_a_new_field_plans_an_update_that_adds_a_nullable_column(stack: Stack) -> None:
    @dataclasses.dataclass
    class EventV2(Event):
        referrer: str | None = None

    table = CloudSQLTable(stack.database, "events").options(schema=EventV2)
    declared = [stack.database.instance, stack.database, table, stack.late]
    plan = stack.provider.plan(declared)
    assert [(c.resource_id, c.action) for c in plan.changes if c.action != "noop"] == [
        ("my-project:sink-db.app.events", "update")
    ]
    stack.provider.apply(plan)
    with stack.admin() as conn:
        column = conn.run("SELECT is_nullable FROM information_schema.columns WHERE column_name = 'referrer'")
    assert column == [["YES"]]
    run(
        writer_for(table, schema_from_type(EventV2), stack.outputs(), Path.cwd()),
        [{**dataclasses.asdict(events(1, 7)[0]), "referrer": "x"}],
    )
