"""Consumers inside the server: handlers of every kind on a Pulse, rows into a real File sink,
per-message failure and redelivery, dependencies of every scope, start-up errors, and a real
``bfctl serve`` stopped with SIGTERM while consuming."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from scoped import GlobalDep, NoScopeDep, ProcessDep, ReplicaDep, identities
from support import serving, wait_until, write

from bfctl.runtime.app import FlowApp
from bfctl.runtime.errors import StartupError
from bfctl.runtime.pull_loops import PullLoop
from bfctl.runtime.sources import Delivery
from bfctl.runtime.sources.pulse import PulseReader
from bfctl.testing import TestClient
from buildflow import Flow
from buildflow.dependencies.headers import BearerCredentials
from buildflow.io.gcp import GCPPubSubSubscription, GCPPubSubTopic
from buildflow.io.local import File, Pulse
from buildflow.requests import Request
from buildflow.types.gcp import PubsubMessage
from buildflow.types.portable import FileFormat

WAIT = 30.0


@dataclasses.dataclass
class Event:
    user: str
    n: int


def _rows(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(folder.glob("*.json")) for line in path.read_text().splitlines()]


class Seen:
    """What a handler was given, from the worker's threads; ``wait`` until enough came."""

    def __init__(self, enough: int) -> None:
        self.values: list[Any] = []
        self._enough = enough
        self._lock = threading.Lock()
        self._done = threading.Event()

    def add(self, value: Any) -> None:
        with self._lock:
            self.values.append(value)
            if len(self.values) >= self._enough:
                self._done.set()

    def wait(self) -> list[Any]:
        assert self._done.wait(WAIT), f"only {len(self.values)} of {self._enough} messages within {WAIT}s"
        with self._lock:
            return list(self.values)


def _consume(flow: Flow, seen: Seen) -> list[Any]:
    """Serve ``flow`` until its handler saw enough, then stop it as SIGTERM does."""
    with TestClient(flow):
        return seen.wait()


# -- what a handler returns ---------------------------------------------------------------------
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_returned_items_lists_and_none_become_rows(tmp_path: Path, is_async: bool) -> None:
    items = [b'{"user": "a", "n": 1}', b'{"user": "b", "n": 2}', b'{"user": "skip", "n": 3}']
    seen = Seen(len(items))
    app = Flow()

    def handle(event: Event) -> list[Event] | Event | None:
        seen.add(event)
        if event.user == "skip":
            return None
        if event.user == "b":
            return [event, Event("b2", event.n * 10)]
        return event

    async def handle_async(event: Event) -> list[Event] | Event | None:
        return handle(event)

    sink = File(str(tmp_path / "out" / "events.json"), FileFormat.JSON)
    app.consumer(Pulse(items, 0), sink)(handle_async if is_async else handle)

    got = _consume(app, seen)

    assert got[:3] == [Event("a", 1), Event("b", 2), Event("skip", 3)]
    rows = _rows(tmp_path / "out")
    assert rows[:3] == [{"user": "a", "n": 1}, {"user": "b", "n": 2}, {"user": "b2", "n": 20}]
    assert all(r["user"] != "skip" for r in rows)


# -- conversion by annotation -------------------------------------------------------------------
class Upper:
    def __init__(self, text: str) -> None:
        self.text = text

    @classmethod
    def from_bytes(cls, data: bytes) -> Upper:
        return cls(data.decode().upper())


@pytest.mark.parametrize(
    ("annotation", "item", "check"),
    [
        (Event, b'{"user": "ann", "n": "7"}', lambda v: v == Event("ann", 7)),
        (dict, b'{"user": "ann", "n": 7}', lambda v: v == {"user": "ann", "n": 7}),
        (dict[str, int], b'{"a": 1}', lambda v: v == {"a": 1}),
        (list[int], b"[1, 2]", lambda v: v == [1, 2]),
        (Any, b'{"k": [1]}', lambda v: v == {"k": [1]}),
        (bytes, b"\x00raw", lambda v: v == b"\x00raw"),
        (str, "héllo".encode(), lambda v: v == "héllo"),
        (Upper, b"shout", lambda v: isinstance(v, Upper) and v.text == "SHOUT"),
        (None, b"as is", lambda v: v == b"as is"),
        (PubsubMessage, b"wrapped", lambda v: isinstance(v, PubsubMessage) and v.data == b"wrapped"),
    ],
    ids=["dataclass", "dict", "typed-dict", "list", "any", "bytes", "str", "from_bytes", "none", "pubsub-message"],
)
def test_input_is_converted_by_the_parameter_annotation(
    annotation: Any, item: bytes, check: Callable[[Any], bool]
) -> None:
    seen = Seen(1)
    app = Flow()

    def handle(message) -> None:  # annotated below, per case (none: the raw payload)
        seen.add(message)

    if annotation is not None:
        handle.__annotations__["message"] = annotation
    app.consumer(Pulse([item], 0))(handle)

    value = _consume(app, seen)[0]

    assert check(value), value


def test_items_that_are_not_bytes_are_handed_over_as_they_are() -> None:
    seen = Seen(2)
    app = Flow()
    item = {"made": "by the source"}

    @app.consumer(Pulse([item], 0))
    def handle(message: Event) -> None:  # the annotation does not apply to an object the source made
        seen.add(message)

    assert _consume(app, seen)[:2] == [item, item]


def test_a_message_that_does_not_convert_fails_alone_without_its_content_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = Flow()

    @app.consumer(Pulse([b"{}"], 3600), File(str(tmp_path / "out" / "events.json"), FileFormat.JSON))
    def handle(event: Event) -> Event:
        return event

    batch = [
        b'{"user": "a", "n": 1}',
        b'{"user": "secret-value", "n": "not a number"}',
        b"secret{",
        b'{"user": "c", "n": 3}',
    ]
    with caplog.at_level(logging.WARNING, logger="buildflow.runtime"):
        done = _handle_batch(FlowApp(app), batch)

    assert done == [True, False, False, True]
    assert [r["user"] for r in _rows(tmp_path / "out")] == ["a", "c"]
    failures = [r.getMessage() for r in caplog.records if "a message failed" in r.getMessage()]
    assert len(failures) == 2, caplog.text
    assert "consumer `handle`" in failures[0] and "n: Input should be a valid integer" in failures[0], failures[0]
    assert "is not JSON" in failures[1], failures[1]
    assert "secret" not in caplog.text  # the message's content is never logged


def _handle_batch(flow_app: FlowApp, items: list[bytes]) -> list[bool]:
    """One pulled batch through the flow's first consumer, its sink started and stopped around it."""

    async def run() -> list[bool]:
        loop = asyncio.get_running_loop()
        consumer = flow_app.consumers.consumers[0]
        with ThreadPoolExecutor(2) as pool:
            await flow_app.sinks.start()
            await consumer.start(loop, pool)
            done = await consumer.handle([Delivery(str(i), item) for i, item in enumerate(items)])
            await flow_app.sinks.stop()
        return done

    return asyncio.run(run())


# -- failures: one message nacked, redelivered --------------------------------------------------
def test_a_failing_message_is_nacked_alone_and_delivered_again_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Seen(6)
    failed_once: list[bytes] = []
    app = Flow()

    @app.consumer(Pulse([b"1", b"2", b"3"], 0), File(str(tmp_path / "out" / "n.json"), FileFormat.JSON))
    def handle(item: bytes) -> dict[str, int]:
        seen.add(item)
        if item == b"2" and not failed_once:
            failed_once.append(item)
            raise ValueError("not yet")
        return {"n": int(item)}

    with caplog.at_level(logging.WARNING, logger="buildflow.runtime"):
        order = _consume(app, seen)

    assert order[:5] == [b"1", b"2", b"2", b"3", b"1"]  # the nacked one again, before the next
    assert [r["n"] for r in _rows(tmp_path / "out")][:4] == [1, 2, 3, 1]
    failures = [r.getMessage() for r in caplog.records if "a message failed" in r.getMessage()]
    assert len(failures) == 1, failures
    assert "consumer `handle`" in failures[0] and "ValueError: not yet" in failures[0], failures[0]
    assert "test_consumers.py:" in failures[0]  # where it was raised, on the same line


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_in_one_pulled_batch_only_the_failed_messages_are_not_done(tmp_path: Path, is_async: bool) -> None:
    """A batch of three with a handler error and a row the sink refuses: the third is written."""
    app = Flow()

    def handle(item: bytes) -> Event:
        if item == b"boom":
            raise RuntimeError("boom")
        return Event("u", "not a number" if item == b"bad-row" else int(item))  # type: ignore[arg-type]  # on purpose

    async def handle_async(item: bytes) -> Event:
        return handle(item)

    app.consumer(Pulse([b"0"], 3600), File(str(tmp_path / "out" / "e.json"), FileFormat.JSON))(
        handle_async if is_async else handle
    )
    flow_app = FlowApp(app)

    assert _handle_batch(flow_app, [b"boom", b"bad-row", b"3"]) == [False, False, True]
    assert _rows(tmp_path / "out") == [{"user": "u", "n": 3}]
    consumer = flow_app.consumers.consumers[0]
    assert (consumer.handled, consumer.failed) == (1, 2)


def test_a_full_sink_queue_holds_messages_back_instead_of_failing_them(tmp_path: Path) -> None:
    """Three messages at once into a queue bound to one row: each waits its turn, none fails."""
    app = Flow()

    @app.consumer(
        Pulse([b"0"], 3600), File(str(tmp_path / "out" / "q.json"), FileFormat.JSON), batch_size=1, max_queued_rows=1
    )
    async def handle(item: bytes) -> dict[str, int]:
        return {"n": int(item)}

    assert _handle_batch(FlowApp(app), [b"1", b"2", b"3"]) == [True, True, True]
    assert sorted(r["n"] for r in _rows(tmp_path / "out")) == [1, 2, 3]


class Doubler:
    """An object whose ``__call__`` is ``async def``: awaited, as an ``async def`` handler is."""

    async def __call__(self, item: bytes) -> dict[str, int]:
        return {"n": 2 * int(item)}


def test_an_object_with_an_async_call_is_awaited_as_a_consumer(tmp_path: Path) -> None:
    app = Flow()
    app.consumer(Pulse([b"0"], 1), File(str(tmp_path / "out" / "n.json"), FileFormat.JSON))(Doubler())

    assert [c.name for c in app.consumers] == ["Doubler"]  # what logs and metrics carry, never an address
    assert _handle_batch(FlowApp(app), [b"1", b"2"]) == [True, True]
    assert sorted(r["n"] for r in _rows(tmp_path / "out")) == [2, 4]


class AckedSlowly(PulseReader):
    """A Pulse whose first acknowledgement answers only once the loop has pulled again (or
    after a bounded wait, saying so)."""

    def __init__(self, pulse: Pulse) -> None:
        super().__init__(pulse)
        self.pulls = 0
        self.second_pull = asyncio.Event()
        self.first_acked = asyncio.Event()
        self.pulled_during_first_ack = False
        self.acked: list[str] = []

    async def pull(self, max_messages: int) -> list[Delivery]:
        self.pulls += 1
        if self.pulls == 2:
            self.second_pull.set()
        return await super().pull(max_messages)

    async def ack(self, ack_ids: Sequence[str]) -> None:
        if not self.acked:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.second_pull.wait(), 10)
            self.pulled_during_first_ack = self.second_pull.is_set()
            self.first_acked.set()
        self.acked.extend(ack_ids)
        await super().ack(ack_ids)


def test_the_next_batch_is_pulled_while_the_last_one_is_acknowledged(tmp_path: Path) -> None:
    """The ack is off the loop's path (its rows are durable already), and still sent: the
    loop's last ack is awaited when it stops."""
    app = Flow()
    pulse = Pulse([b"1", b"2", b"3"], 0)

    @app.consumer(pulse, File(str(tmp_path / "out" / "n.json"), FileFormat.JSON))
    async def handle(item: bytes) -> dict[str, int]:
        return {"n": int(item)}

    flow_app = FlowApp(app)
    reader = AckedSlowly(pulse)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        consumer = flow_app.consumers.consumers[0]
        stopping = asyncio.Event()
        with ThreadPoolExecutor(2) as pool:
            await flow_app.sinks.start()
            await consumer.start(loop, pool)
            await reader.open()
            task = loop.create_task(PullLoop(consumer, reader, stopping).run())
            await asyncio.wait_for(reader.first_acked.wait(), WAIT)
            stopping.set()
            await task
            await flow_app.sinks.stop()

    asyncio.run(run())
    assert reader.pulled_during_first_ack
    assert reader.acked[:1] == ["0"]
    assert len(reader.acked) == flow_app.consumers.consumers[0].handled  # every handled one acked, the last too


# -- classes and dependencies -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sync", "async", "class"])
def test_every_scope_is_injected_as_for_endpoints(kind: str) -> None:
    seen = Seen(3)
    app = Flow()

    def sync_handle(
        m: bytes, process: ProcessDep, process2: ProcessDep, replica: ReplicaDep, global_: GlobalDep, no: NoScopeDep
    ) -> None:
        seen.add(identities(process, process2, replica, global_, no))

    async def async_handle(
        m: bytes, process: ProcessDep, process2: ProcessDep, replica: ReplicaDep, global_: GlobalDep, no: NoScopeDep
    ) -> None:
        seen.add(identities(process, process2, replica, global_, no))

    class ClassHandle:
        def process(
            self,
            m: bytes,
            process: ProcessDep,
            process2: ProcessDep,
            replica: ReplicaDep,
            global_: GlobalDep,
            no: NoScopeDep,
        ) -> None:
            seen.add(identities(process, process2, replica, global_, no))

    handlers: dict[str, Any] = {"sync": sync_handle, "async": async_handle, "class": ClassHandle}
    app.consumer(Pulse([b"x"], 0))(handlers[kind])

    first, second, *_ = _consume(app, seen)

    for ids in (first, second):
        assert ids["process_shared"] and ids["replica_shared"] and ids["global_shared"] and ids["no_scope_fresh"]
    assert (first["replica"], first["global"]) == (second["replica"], second["global"])


def test_class_consumer_is_set_up_once_and_torn_down(tmp_path: Path) -> None:
    seen = Seen(3)
    calls: list[str] = []
    app = Flow()

    @app.consumer(Pulse([b"a", b"b"], 0), File(str(tmp_path / "out" / "c.json"), FileFormat.JSON))
    class Prefixer:
        def setup(self) -> None:
            calls.append("setup")
            self.prefix = "p-"

        async def process(self, item: bytes) -> dict[str, str]:
            seen.add(item)
            return {"value": self.prefix + item.decode()}

        def teardown(self) -> None:
            calls.append("teardown")

    _consume(app, seen)

    assert calls == ["setup", "teardown"]
    assert [r["value"] for r in _rows(tmp_path / "out")][:3] == ["p-a", "p-b", "p-a"]


# -- start-up ----------------------------------------------------------------------------------
def _flow_with(handler: Any, source: Any = None) -> Flow:
    app = Flow()
    app.consumer(source or Pulse([b"x"], 1))(handler)
    return app


def test_a_consumer_takes_exactly_one_message_parameter() -> None:
    def two(a: bytes, b: bytes) -> None:
        pass

    with pytest.raises(StartupError, match=r"consumer `two` \(Pulse .*\): .*exactly one parameter.*`a`, `b`"):
        FlowApp(_flow_with(two))


def test_a_consumer_has_no_request() -> None:
    def wants_request(m: bytes, request: Request) -> None:
        pass

    def wants_headers(m: bytes, credentials: BearerCredentials) -> None:
        pass

    with pytest.raises(StartupError, match=r"consumer `wants_request`.*`request` asks for the request"):
        FlowApp(_flow_with(wants_request))
    with pytest.raises(StartupError, match=r"consumer `wants_headers`.*dependency `BearerCredentials` asks for"):
        FlowApp(_flow_with(wants_headers))


def test_an_annotation_no_message_converts_to_is_a_startup_error() -> None:
    def handle(m: asyncio.Queue[bytes]) -> None:
        pass

    with pytest.raises(StartupError, match=r"consumer `handle`.*parameter `m`"):
        FlowApp(_flow_with(handle))


def test_a_source_that_was_not_applied_stops_the_worker_naming_the_consumer() -> None:
    topic = GCPPubSubTopic("my-project", "events")
    source = GCPPubSubSubscription("my-project", "events-sub").options(topic=topic)

    def handle(m: bytes) -> None:
        pass

    with pytest.raises(StartupError, match=r"consumer `handle` \(GCPPubSubSubscription my-project/events-sub\).*apply"):
        TestClient(_flow_with(handle, source)).__enter__()


def test_worker_count_counts_consumers_replicas() -> None:
    app = Flow()

    @app.consumer(Pulse([b"x"], 1), num_replicas=3)
    def handle(m: bytes) -> None:
        pass

    assert FlowApp(app).workers_wanted() == 3


# -- a real bfctl serve ------------------------------------------------------------------------
NUMBERED = """\
import asyncio
import contextlib
import dataclasses
import itertools
import os

from buildflow import Flow
from buildflow.io.local import File, Pulse
from buildflow.types.portable import FileFormat


@dataclasses.dataclass
class Row:
    worker: int
    n: int


app = Flow()


@app.consumer(Pulse([b"a", b"b", b"c"], 0), File("out/rows.json", FileFormat.JSON), num_replicas=2, num_concurrency=2)
class Numbered:
    def setup(self):
        self.count = itertools.count()
        self.returned = open(f"returned-{os.getpid()}.txt", "a")

    async def process(self, item: bytes) -> Row:
        n = next(self.count)
        await asyncio.sleep(0.002)  # work in flight when SIGTERM comes
        self.returned.write(f"{n}\\n")
        self.returned.flush()
        return Row(os.getpid(), n)

    def teardown(self):
        self.returned.close()
        with open("teardown.txt", "a") as f:
            f.write(f"{os.getpid()}\\n")
"""


def test_sigterm_while_consuming_exits_0_with_every_returned_item_in_the_sink(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    write(tmp_path / "numbered.py", NUMBERED)

    def both_consuming() -> bool:
        """Both workers returned 50 items (read from their files: what workers print can share a
        line with another process's output, the "Serving" line's included)."""
        return sum(len(f.read_text().split()) >= 50 for f in tmp_path.glob("returned-*.txt")) == 2

    with serving(["numbered.py", "--apply", "--port", "0", "--no-access-log"], tmp_path, bfctl_env) as server:
        wait_until(both_consuming)
        code = server.stop()

    assert code == 0, server.output
    torn_down = set(map(int, (tmp_path / "teardown.txt").read_text().split()))
    assert len(torn_down) == 2, server.output
    returned = {(pid, int(n)) for pid in torn_down for n in (tmp_path / f"returned-{pid}.txt").read_text().split()}
    stored = {(r["worker"], r["n"]) for r in _rows(tmp_path / "out")}
    assert returned == stored, (sorted(returned - stored)[:10], sorted(stored - returned)[:10])
    assert len(returned) >= 100


# -- a subscription of the durable local log ---------------------------------------------------
LOG_FLOW = """\
import dataclasses
import time
from pathlib import Path

from buildflow import Flow
from buildflow.io.gcp import GCPPubSubSubscription, GCPPubSubTopic
from buildflow.io.local import File
from buildflow.types.portable import FileFormat


@dataclasses.dataclass
class Msg:
    n: int


topic = GCPPubSubTopic("local-project", "events")
subscription = GCPPubSubSubscription("local-project", "events-sub").options(
    topic=topic, ack_deadline_seconds=10, batch_size=5
)
app = Flow()


@app.collector("/publish", sink=topic)
def publish(msg: Msg) -> Msg:
    return msg


@app.consumer(subscription, File("out/got.json", FileFormat.JSON))
def store(msg: Msg) -> Msg:
    marker = Path("failed-once")
    if msg.n == 3 and not marker.exists():
        marker.touch()
        raise RuntimeError("first try")
    while msg.n > 10 and Path("hold").exists():  # the first run is killed while handling these
        time.sleep(0.05)
    print(f"stored {msg.n}", flush=True)
    return msg
"""


def _publish(server: Any, numbers: range) -> None:
    for n in numbers:
        assert server.call("POST", "/publish", json.dumps({"n": n}).encode()) == (200, '{"success":true}')


def _stored_all(numbers: set[int]) -> Callable[[str], bool]:
    """A ``wait_for`` predicate: true once the output has said every one of ``numbers`` was stored."""
    said: set[int] = set()

    def covered(line: str) -> bool:
        if line.startswith("stored "):
            said.add(int(line.split()[1]))
        return numbers <= said

    return covered


@pytest.fixture
def log_env(bfctl_env: dict[str, str]) -> dict[str, str]:
    return {**bfctl_env, "BFCTL_LOCAL_PUBSUB": "log"}


def test_a_message_whose_handler_fails_once_is_redelivered_and_stored(tmp_path: Path, log_env: dict[str, str]) -> None:
    write(tmp_path / "flow.py", LOG_FLOW)

    with serving(["flow.py", "--apply", "--port", "0", "--no-access-log"], tmp_path, log_env) as server:
        _publish(server, range(1, 6))
        server.wait_for(_stored_all({1, 2, 3, 4, 5}))
        code = server.stop()

    assert code == 0, server.output
    assert (tmp_path / "failed-once").exists()
    assert "consumer `store` (GCPPubSubSubscription local-project/events-sub): a message failed" in server.output
    assert {r["n"] for r in _rows(tmp_path / "out")} == {1, 2, 3, 4, 5}


def test_sigkill_while_consuming_then_a_restart_loses_nothing(tmp_path: Path, log_env: dict[str, str]) -> None:
    write(tmp_path / "flow.py", LOG_FLOW)
    published = set(range(1, 61))
    (tmp_path / "hold").touch()

    with serving(["flow.py", "--apply", "--port", "0", "--no-access-log"], tmp_path, log_env) as server:
        _publish(server, range(1, 61))  # each durable in the log once answered
        # 3 fails once and is due again a second later, by when 11-15 hold the loop: 9 at least
        server.wait_for(lambda line: line.startswith("stored "), count=9)
        server.process.kill()
        server.process.wait()
    before = {r["n"] for r in _rows(tmp_path / "out")}
    assert before <= set(range(1, 11))
    (tmp_path / "hold").unlink()

    # Messages handed out before the kill come again once their 10 s lease runs out.
    with serving(["flow.py", "--port", "0", "--no-access-log"], tmp_path, log_env) as server:
        server.wait_for(_stored_all(published - before))
        code = server.stop()

    assert code == 0, server.output
    assert {r["n"] for r in _rows(tmp_path / "out")} == published
