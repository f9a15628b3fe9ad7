"""Collectors and sink dependencies end to end: group commit, isolation of refused rows,
backpressure, an unreachable sink, and flushing at shutdown — on real sinks."""

import asyncio
import dataclasses
import json
from pathlib import Path

import psycopg
import pytest
from support import cloud_sql_instance, wait_until

from bfctl.providers import get_provider
from bfctl.runtime.batching import Batcher, BatchOptions, QueueFull
from bfctl.runtime.sinks import RowsRejected, schema_from_type, writer_for
from bfctl.testing import TestClient
from buildflow import Flow
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.dependencies.sink import SinkDependencyBuilder
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLTable
from buildflow.io.local import File
from buildflow.types.portable import FileFormat


@dataclasses.dataclass
class Event:
    user: str
    n: int


def _file_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for path in folder.glob("*.json") for line in path.read_text().splitlines()]


def test_concurrent_submissions_share_one_write(tmp_path: Path) -> None:
    sink = File(str(tmp_path / "out" / "events.json"), FileFormat.JSON)

    async def run() -> Batcher:
        batcher = Batcher(writer_for(sink, schema_from_type(Event), {}, tmp_path))
        await batcher.start()
        # all ten are queued before the flusher gets to run: one write carries them all
        await asyncio.gather(*(batcher.submit([{"user": f"u{i}", "n": i}]) for i in range(10)))
        await batcher.submit([{"user": "late", "n": 10}])
        await batcher.stop()
        return batcher

    batcher = asyncio.run(run())
    assert (batcher.batches_written, batcher.rows_written) == (2, 11)
    assert sorted(r["n"] for r in _file_rows(tmp_path / "out")) == list(range(11))


def test_queue_bound_refuses_at_once(tmp_path: Path) -> None:
    sink = File(str(tmp_path / "out" / "events.json"), FileFormat.JSON)

    async def run() -> list[object]:
        batcher = Batcher(
            writer_for(sink, schema_from_type(Event), {}, tmp_path), BatchOptions(batch_size=2, max_queued_rows=3)
        )
        await batcher.start()
        results = await asyncio.gather(
            *(batcher.submit([{"user": "u", "n": i}]) for i in range(5)), return_exceptions=True
        )
        await batcher.stop()
        return results

    results = asyncio.run(run())
    assert [type(r).__name__ for r in results] == ["tuple"] * 3 + ["QueueFull"] * 2  # the commits joined, then refusals
    assert isinstance(results[-1], QueueFull)


def test_sink_dependency_pushes_durably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    events = SinkDependencyBuilder(File("pushed/events.json", FileFormat.JSON))
    app = Flow()

    @app.service().endpoint("/track", method="POST")
    async def track(event: Event, sink: events) -> str:
        await sink.push(event)
        await sink.push_batch([Event("b", 2), {"user": "c", "n": 3}])
        return "ok"

    with TestClient(app) as client:
        assert client.post("/track", json={"user": "a", "n": 1}).json() == "ok"
    assert [r["user"] for r in _file_rows(tmp_path / "pushed")] == ["a", "b", "c"]


@pytest.fixture(scope="module")
def postgres_table(tmp_path_factory: pytest.TempPathFactory):
    """A CloudSQLTable applied on the local target, with a CHECK the schema cannot express."""
    project = tmp_path_factory.mktemp("collectors")
    instance = cloud_sql_instance("events-db")
    database = CloudSQLDatabase("events", instance)
    table = CloudSQLTable(database, "events").options(schema=Event)
    provider = get_provider("local", project, "dev")
    outputs = provider.apply(provider.plan([instance, database, table]))
    out = outputs[database.primitive_id()]
    admin = (project / ".buildflow").rglob("admin-password").__next__().read_text().strip()
    dsn = {"host": out["host"], "port": out["port"], "dbname": "events", "user": "buildflow_admin", "password": admin}
    with psycopg.connect(**dsn, autocommit=True) as conn:
        conn.execute("alter table events add constraint n_positive check (n >= 0)")
    yield project, table, ResourceOutputs(outputs, "local"), provider, dsn
    provider.destroy()


def _stored(dsn: dict) -> list[tuple[str, int]]:
    with psycopg.connect(**dsn) as conn:
        return sorted(conn.execute('select "user", n from events').fetchall())


def test_refused_row_fails_only_its_own_request(postgres_table) -> None:
    project, table, outputs, _provider, dsn = postgres_table

    async def run() -> list[object]:
        writer = writer_for(table, schema_from_type(Event), outputs, project)
        batcher = Batcher(writer)
        await batcher.start()
        convert = writer.converter_for(Event)
        rows = [[convert(Event("ok1", 1))], [convert(Event("bad", -1))], [convert(Event("ok2", 2))]]
        results = await asyncio.gather(*(batcher.submit(r) for r in rows), return_exceptions=True)
        await batcher.stop()
        return results

    ok1, bad, ok2 = asyncio.run(run())
    assert isinstance(bad, RowsRejected)
    assert isinstance(ok1, tuple) and isinstance(ok2, tuple)
    assert ok1[1:] == ok2[1:] == (1, 1)  # once their batch was refused, each went out alone
    stored = [n for _, n in _stored(dsn)]
    assert 1 in stored and 2 in stored and -1 not in stored


def test_collector_into_cloud_sql_table(postgres_table) -> None:
    project, table, outputs, provider, dsn = postgres_table
    app = Flow()

    @app.collector("/events", method="POST", sink=table)
    def collect(event: Event) -> list[Event]:
        return [event, Event(event.user + "-copy", event.n + 100)]

    with TestClient(app, outputs=outputs) as client:
        assert client.post("/events", json={"user": "web", "n": 7}).json() == {"success": True}
        r = client.post("/events", json={"user": "neg", "n": -5})  # the CHECK refuses it
        assert r.status_code == 422 and "refused" in r.json()["detail"]
        r = client.post("/events", json={"user": "web"})
        assert r.status_code == 422

        server, port = _server(project, provider)
        server.stop()
        r = client.post("/events", json={"user": "down", "n": 1})
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        server.start(port)
        assert client.post("/events", json={"user": "back", "n": 2}).status_code == 200
    stored = {u for u, _ in _stored(dsn)}
    assert {"web", "web-copy", "back", "back-copy"} <= stored and "neg" not in stored and "down" not in stored


def _server(project: Path, provider):
    from bfctl.providers.local.postgres import EmbeddedPostgres

    record = provider.store.load().resources["my-project:events-db"]
    return EmbeddedPostgres(project / record.private["directory"]), record.private["port"]


def test_shutdown_flushes_every_acknowledged_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = Flow()

    @app.collector("/e", method="POST", sink=File("flushed/e.json", FileFormat.JSON), max_wait=0.05)
    def collect(event: Event) -> Event:
        return event

    with TestClient(app) as client:

        async def burst() -> list[int]:
            import aiohttp

            async with aiohttp.ClientSession() as s:

                async def one(i: int) -> int:
                    async with s.post(client.base_url + "/e", json={"user": "u", "n": i}) as r:
                        return r.status

                return await asyncio.gather(*(one(i) for i in range(50)))

        statuses = asyncio.run(burst())
    assert statuses == [200] * 50
    assert sorted(r["n"] for r in _file_rows(tmp_path / "flushed")) == list(range(50))


def test_a_write_that_never_finishes_is_cancelled_after_write_timeout() -> None:
    """The writer's own coroutine is cancelled (so it can drop its connection), and the
    requests in the batch are told the sink is unavailable, never acknowledged."""
    from bfctl.runtime.batching import SinkUnavailable
    from bfctl.runtime.sinks.base import SinkWriter

    class Stuck(SinkWriter):
        description = "stuck sink"
        cancelled = False

        async def write(self, rows: list[object]) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                Stuck.cancelled = True
                raise

    async def run() -> None:
        batcher = Batcher(Stuck(), BatchOptions(write_timeout=0.05))
        await batcher.start()
        with pytest.raises(SinkUnavailable):
            await batcher.submit([{"n": 1}])
        await batcher.stop()

    asyncio.run(run())
    assert Stuck.cancelled


@pytest.mark.parametrize("concurrent", [1, 2])
def test_a_batcher_runs_as_many_writes_at_once_as_its_writer_takes(concurrent: int) -> None:
    """Each write waits until ``concurrent`` writes have started: they all finish only if the
    batcher starts them at once, and never more than that are in flight."""
    from bfctl.runtime.sinks.base import SinkWriter

    class Rendezvous(SinkWriter):
        description = "rendezvous sink"
        concurrent_writes = concurrent

        def __init__(self) -> None:
            self.started = 0
            self.in_flight = 0
            self.most_in_flight = 0
            self.all_started = asyncio.Event()
            self.first_started = asyncio.Event()
            self.batches: list[list[object]] = []

        async def write(self, rows: list[object]) -> None:
            self.started += 1
            self.first_started.set()
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            if self.in_flight == concurrent:
                self.all_started.set()
            try:
                async with asyncio.timeout(10):  # a deadline: a batcher writing one at a time never gets there
                    await self.all_started.wait()
                self.batches.append(rows)
            finally:
                self.in_flight -= 1

    async def run() -> Rendezvous:
        writer = Rendezvous()
        batcher = Batcher(writer)
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit([{"n": 1}]))
        async with asyncio.timeout(10):
            await writer.first_started.wait()  # the first write has taken the first row
        await asyncio.gather(first, batcher.submit([{"n": 2}]), batcher.submit([{"n": 3}]))
        await batcher.stop()
        return writer

    writer = asyncio.run(run())
    assert writer.most_in_flight == concurrent
    assert sorted(row["n"] for rows in writer.batches for row in rows) == [1, 2, 3]  # type: ignore[index]
    assert writer.batches[-1] == [{"n": 2}, {"n": 3}] if concurrent == 1 else len(writer.batches) == 2


def test_the_cloud_sql_writer_copies_batches_at_once_on_connections_of_their_own(postgres_table) -> None:
    """While a lock holds every COPY back, a second batch starts beside the first (two sessions
    wait on the lock), and both land once it is released."""
    project, table, outputs, _provider, dsn = postgres_table

    def copies_waiting() -> int:
        query = "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and query like 'COPY%'"
        return watch.execute(query).fetchone()[0]  # type: ignore[index]

    async def run(admin: psycopg.Connection) -> None:
        writer = writer_for(table, schema_from_type(Event), outputs, project)
        batcher = Batcher(writer)
        await batcher.start()
        convert = writer.converter_for(Event)
        with admin.transaction():
            admin.execute("lock table events in share mode")
            first = asyncio.ensure_future(batcher.submit([convert(Event("held1", 11))]))
            await asyncio.to_thread(wait_until, lambda: copies_waiting() == 1)
            second = asyncio.ensure_future(batcher.submit([convert(Event("held2", 12))]))
            await asyncio.to_thread(wait_until, lambda: copies_waiting() == 2)
        await asyncio.gather(first, second)
        await batcher.stop()

    # The lock is held in a transaction of its own; the sessions are watched from another
    # connection, whose every query sees the current activity.
    with psycopg.connect(**dsn, autocommit=True) as admin, psycopg.connect(**dsn, autocommit=True) as watch:
        asyncio.run(run(admin))
    assert {("held1", 11), ("held2", 12)} <= set(_stored(dsn))


def test_a_pulled_batch_goes_out_in_one_write_each_message_with_its_fate(postgres_table) -> None:
    """``submit_each``, as a consumer hands over a pulled batch: one write, and a refused row
    fails only the message it came from (the others are durable and get their commit)."""
    project, table, outputs, _provider, dsn = postgres_table

    async def run() -> tuple[list[object], int]:
        writer = writer_for(table, schema_from_type(Event), outputs, project)
        batcher = Batcher(writer)
        await batcher.start()
        convert = writer.converter_for(Event)
        together = [[convert(Event("each", n)), convert(Event("each", n + 100))] for n in (21, 22, 23)]
        written = await batcher.submit_each(together)
        writes = batcher.batches_written
        fates = await batcher.submit_each([[convert(Event("each", 31))], [convert(Event("bad", -1))]])
        await batcher.stop()
        return [*written, *fates], writes

    (first, second, third, ok, bad), writes = asyncio.run(run())
    assert writes == 1 and first == second == third == (1, 6, 3)
    assert isinstance(ok, tuple) and isinstance(bad, RowsRejected)
    stored = sorted(n for user, n in _stored(dsn) if user in ("each", "bad"))
    assert stored == [21, 22, 23, 31, 121, 122, 123]


def test_a_pulled_batch_over_the_bound_waits_for_room_or_is_refused(tmp_path: Path) -> None:
    sink = File(str(tmp_path / "out" / "events.json"), FileFormat.JSON)

    async def run(hold: bool) -> list[object]:
        options = BatchOptions(batch_size=2, max_queued_rows=3)
        batcher = Batcher(writer_for(sink, schema_from_type(Event), {}, tmp_path), options)
        await batcher.start()
        fates = await batcher.submit_each([[{"user": "u", "n": i}] for i in range(5)], hold=hold)
        await batcher.stop()
        return list(fates)

    held = asyncio.run(run(hold=True))
    assert all(isinstance(fate, tuple) for fate in held)  # each waited for room, then was written
    refused = asyncio.run(run(hold=False))
    assert [type(fate).__name__ for fate in refused] == ["tuple"] * 3 + ["QueueFull"] * 2
    assert sorted(r["n"] for r in _file_rows(tmp_path / "out")) == [0, 0, 1, 1, 2, 2, 3, 4]
