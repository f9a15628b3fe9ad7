"""GCPPubSubSubscription on the durable local log (``BFCTL_LOCAL_PUBSUB=log``): made by apply,
read by the LOG reader, with acks, redelivery, dead-lettering and offsets that survive a restart,
a SIGKILL and several processes reading at once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from bfctl.providers.local import LocalProvider
from bfctl.providers.local.pubsub import MODE_VARIABLE
from bfctl.runtime.redelivery import BASE_VARIABLE
from bfctl.runtime.sinks import writer_for
from bfctl.runtime.sinks.pubsub import TopicLog
from bfctl.runtime.sources import Delivery, SourceReader, reader_for
from bfctl.runtime.sources.log import LogReader
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.io.gcp import GCPPubSubSubscription, GCPPubSubTopic
from buildflow.storage import log_subscription
from buildflow.storage.engines import Engine
from buildflow.storage.log_subscription import Lease, LogSubscription

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def log_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODE_VARIABLE, "log")
    monkeypatch.setenv(BASE_VARIABLE, "0.01")  # a nacked message comes again within the next pull


def at_once(attempt: int) -> float:
    return 0.0


def publish(provider: LocalProvider, topic: GCPPubSubTopic, *numbers: int) -> None:
    async def run() -> None:
        writer = writer_for(topic, None, ResourceOutputs(provider.outputs()), provider.project_dir)
        await writer.start()
        await writer.write([{"n": n} for n in numbers])
        await writer.stop()

    asyncio.run(run())


def numbers(deliveries: list[Delivery]) -> list[int]:
    return [json.loads(d.data)["n"] for d in deliveries]


async def pull(reader: SourceReader, max_messages: int = 100) -> list[Delivery]:
    return await reader.pull(max_messages)


def test_apply_makes_a_subscription_that_gets_what_is_published_after_it(tmp_path: Path) -> None:
    topic = GCPPubSubTopic("my-project", "clicks")
    sub = GCPPubSubSubscription("my-project", "clicks-sub").options(topic=topic)
    provider = LocalProvider(tmp_path, "dev")
    provider.apply(provider.plan([topic]))
    publish(provider, topic, 1, 2)  # before the subscription: not for it
    plan = provider.plan([topic, sub])
    assert [(c.resource_id, c.action) for c in plan.changes if c.action != "noop"] == [
        ("my-project/clicks-sub", "create")
    ]
    provider.apply(plan)
    out = provider.outputs()[sub.primitive_id()]
    record = tmp_path / ".buildflow" / "local" / "dev" / "pubsub" / "my-project" / "clicks-sub.subscription.json"
    assert out["engine"] == Engine.LOG and out["path"] == str(record) and out["ack_deadline_seconds"] == 600
    publish(provider, topic, 3, 4, 5, 6)

    async def consume() -> tuple[list[int], list[int], list[int], list[int | None]]:
        reader = reader_for(sub, provider.outputs(), tmp_path)
        await reader.open()
        first = await pull(reader, 2)
        await reader.ack([d.ack_id for d in first])
        rest = await pull(reader)
        await reader.ack([rest[0].ack_id])
        await reader.nack([rest[1].ack_id])
        again = await pull(reader)
        await reader.ack([d.ack_id for d in again])
        assert await pull(reader) == []  # waits about a second, then nothing
        await reader.close()
        return numbers(first), numbers(rest), numbers(again), [d.delivery_attempt for d in again]

    assert asyncio.run(consume()) == ([3, 4], [5, 6], [6], [2])
    assert provider.plan([topic, sub]).counts()["noop"] == 2
    provider.destroy()
    assert not record.exists() and not log_subscription.lock_path(record).exists()
    assert not (tmp_path / ".buildflow" / "local" / "dev").exists()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def a_log(tmp_path: Path, count: int) -> tuple[Path, Path]:
    log = tmp_path / "topic.jsonl"
    log.write_bytes(b"".join(json.dumps({"n": n}).encode() + b"\n" for n in range(count)))
    record = tmp_path / "sub.subscription.json"
    log_subscription.create(record, log)
    with open(log, "ab") as f:  # published after the subscription was made
        f.write(b"".join(json.dumps({"n": n}).encode() + b"\n" for n in range(count, count * 2)))
        f.write(b'{"n": "torn')  # a publisher killed mid-append: not a message
    return record, log


def test_leases_end_by_the_clock_nacks_come_at_once_and_extend_keeps_a_lease(tmp_path: Path) -> None:
    record, log = a_log(tmp_path, 3)
    clock = Clock()
    sub = LogSubscription(record, log, ack_deadline_seconds=30, clock=clock)

    def take(n: int = 10) -> list[tuple[int, int]]:
        return [(json.loads(lease.data)["n"], lease.attempt) for lease in sub.take(n)]

    first = sub.take(2)
    assert [(json.loads(x.data)["n"], x.attempt) for x in first] == [(3, 1), (4, 1)]
    assert take() == [(5, 1)]
    assert take() == []  # all leased
    sub.nack([first[0].ack_id], at_once)
    assert take() == [(3, 2)]  # at once
    sub.extend([first[1].ack_id], 100)
    clock.now += 30  # 3 (second lease) and 5 ran out; 4 was extended
    assert take() == [(3, 3), (5, 2)]
    sub.nack([first[0].ack_id], at_once)  # a nack of an earlier lease does not end the current one
    assert take() == []
    sub.ack([first[0].ack_id])  # an ack of an earlier lease counts: the message was handled
    clock.now += 71
    last = sub.take(10)
    assert [(json.loads(x.data)["n"], x.attempt) for x in last] == [(4, 2), (5, 3)]
    sub.ack([x.ack_id for x in last])
    assert take() == []
    assert sub.committed() == log.stat().st_size - len(b'{"n": "torn')


_KILLED_READER = textwrap.dedent(
    """
    import asyncio, json, os, signal, sys
    from pathlib import Path
    from buildflow.io.gcp import GCPPubSubSubscription
    from bfctl.runtime.sources.log import log_reader

    async def main():
        sub = GCPPubSubSubscription("my-project", "events-sub")
        reader = log_reader(sub, json.loads(sys.argv[1]), Path(sys.argv[2]))
        await reader.open()
        batch = await reader.pull(3)
        await reader.ack([d.ack_id for d in batch[:2]])
        print(json.dumps([json.loads(d.data)["n"] for d in batch]), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # while holding the lease of the third

    asyncio.run(main())
    """
)


def test_acks_survive_a_sigkill_and_the_killed_readers_leases_end(tmp_path: Path) -> None:
    record, log = a_log(tmp_path, 3)
    out = {"path": str(record), "log": str(log), "ack_deadline_seconds": 30}
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_READER, json.dumps(out), str(tmp_path)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -9, killed.stderr
    assert json.loads(killed.stdout) == [3, 4, 5]
    clock = Clock()
    sub = LogSubscription(record, log, ack_deadline_seconds=30, clock=clock)
    assert sub.take(10) == []  # 5 is still leased to the killed reader
    clock.now = 2**40
    again = sub.take(10)
    assert [(json.loads(x.data)["n"], x.attempt) for x in again] == [(5, 2)]
    assert sub.committed() == again[0].offset


_READER_PROCESS = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from pathlib import Path
    from buildflow.io.gcp import GCPPubSubSubscription
    from bfctl.runtime.sources.log import log_reader

    async def main():
        sub = GCPPubSubSubscription("my-project", "events-sub")
        reader = log_reader(sub, json.loads(sys.argv[1]), Path(sys.argv[2]))
        await reader.open()
        print("ready", flush=True)
        sys.stdin.readline()  # both start together
        while batch := await reader.pull(7):
            taken = time.time()
            await asyncio.sleep(0.001)  # work on them while holding the leases
            print(json.dumps([[json.loads(d.data)["n"], taken, time.time()] for d in batch]), flush=True)
            await reader.ack([d.ack_id for d in batch])
        await reader.close()

    asyncio.run(main())
    """
)


def test_two_processes_never_hold_the_same_message(tmp_path: Path) -> None:
    record, log = a_log(tmp_path, 150)
    out = {"path": str(record), "log": str(log), "ack_deadline_seconds": 600}
    command = [sys.executable, "-c", _READER_PROCESS, json.dumps(out), str(tmp_path)]
    readers = [
        subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    for reader in readers:
        assert reader.stdout is not None and reader.stdout.readline() == "ready\n"
    for reader in readers:
        assert reader.stdin is not None
        reader.stdin.write("go\n")
        reader.stdin.flush()
    held: dict[int, list[tuple[float, float]]] = {}
    per_process = []
    for reader in readers:
        stdout, _ = reader.communicate(timeout=60)
        assert reader.returncode == 0
        got = [item for line in stdout.splitlines() for item in json.loads(line)]
        per_process.append(len(got))
        for n, taken, acked in got:
            held.setdefault(n, []).append((taken, acked))
    assert sorted(held) == list(range(150, 300))  # every message, each to one reader once
    assert all(len(leases) == 1 for leases in held.values())
    assert all(count > 0 for count in per_process), per_process  # both read


def test_after_max_delivery_attempts_a_message_goes_to_the_dead_letter_log(tmp_path: Path) -> None:
    topic, dead = GCPPubSubTopic("my-project", "orders"), GCPPubSubTopic("my-project", "orders-dead")
    sub = GCPPubSubSubscription("my-project", "orders-sub").options(
        topic=topic, max_delivery_attempts=5, dead_letter_topic=dead
    )
    provider = LocalProvider(tmp_path, "dev")
    provider.apply(provider.plan([topic, dead, sub]))
    out = provider.outputs()
    assert out[sub.primitive_id()]["dead_letter_log"] == out[dead.primitive_id()]["path"]
    publish(provider, topic, 7, 8)

    async def fail_seven() -> list[tuple[int, int | None]]:
        reader = reader_for(sub, provider.outputs(), tmp_path)
        await reader.open()
        seen = []
        while batch := await pull(reader):
            seen += [(json.loads(d.data)["n"], d.delivery_attempt) for d in batch]
            await reader.ack([d.ack_id for d in batch if json.loads(d.data)["n"] == 8])
            await reader.nack([d.ack_id for d in batch if json.loads(d.data)["n"] == 7])
        await reader.close()
        return seen

    assert asyncio.run(fail_seven()) == [(7, 1), (8, 1), *[(7, attempt) for attempt in range(2, 6)]]
    assert [json.loads(line) for line in Path(out[dead.primitive_id()]["path"]).read_text().splitlines()] == [{"n": 7}]
    state = LogSubscription(Path(out[sub.primitive_id()]["path"]), Path(out[topic.primitive_id()]["path"]),
                            ack_deadline_seconds=600)  # fmt: skip
    assert state.committed() == Path(out[topic.primitive_id()]["path"]).stat().st_size
    provider.destroy()


def _publish_lines(topic: TopicLog, *numbers: int) -> None:
    asyncio.run(topic.publish([json.dumps({"n": n}).encode() for n in numbers]))


def _emptied(log: Path) -> None:
    with open(log, "r+b") as f:  # what `: > topic.jsonl` does
        f.truncate(0)


def test_a_log_emptied_and_refilled_to_its_old_length_is_read_from_its_start(tmp_path: Path) -> None:
    log, record = tmp_path / "topic.jsonl", tmp_path / "sub.subscription.json"
    topic = TopicLog(log)
    asyncio.run(topic.open())
    log_subscription.create(record, log)
    _publish_lines(topic, 1, 2, 3)
    sub = LogSubscription(record, log, ack_deadline_seconds=600)
    first = sub.take(10)
    sub.ack([first[0].ack_id])
    _emptied(log)
    _publish_lines(topic, 4, 5, 6)  # as many bytes as before
    sub.ack([first[1].ack_id])  # a lease of the old file acks nothing in the new one
    again = sub.take(10)
    assert [(json.loads(x.data)["n"], x.attempt) for x in again] == [(4, 1), (5, 1), (6, 1)]
    asyncio.run(topic.close())


def test_what_another_writer_put_in_an_emptied_log_is_kept(tmp_path: Path) -> None:
    log, record = tmp_path / "topic.jsonl", tmp_path / "sub.subscription.json"
    serving, later = TopicLog(log), TopicLog(log)
    asyncio.run(serving.open())
    log_subscription.create(record, log)
    _publish_lines(serving, 1, 2)
    sub = LogSubscription(record, log, ack_deadline_seconds=600)
    sub.ack([lease.ack_id for lease in sub.take(10)])
    _emptied(log)
    asyncio.run(later.open())  # opened after: it cannot know
    _publish_lines(later, 3)
    _publish_lines(serving, 4)  # notices, and starts a new file with what the log holds
    assert [json.loads(lease.data)["n"] for lease in sub.take(10)] == [3, 4]
    asyncio.run(serving.close())
    asyncio.run(later.close())


class HeldTake(LogSubscription):
    """A subscription whose take waits, once it has leased, until the test lets it return: a
    pull is cancelled there (a worker's grace period ending) while the leases are being made."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.leased, self.go_on = threading.Event(), threading.Event()

    def take(self, max_messages: int) -> list[Lease]:
        leases = super().take(max_messages)
        self.leased.set()
        self.go_on.wait(30)
        return leases


def test_leases_taken_by_a_pull_cancelled_at_shutdown_are_given_back_by_close(tmp_path: Path) -> None:
    record, log = a_log(tmp_path, 2)
    held = HeldTake(record, log, ack_deadline_seconds=600)

    async def stop_mid_take() -> None:
        reader = LogReader(held, None, "events-sub")
        await reader.open()
        pull = asyncio.ensure_future(reader.pull(10))
        await asyncio.to_thread(held.leased.wait, 30)
        pull.cancel()
        held.go_on.set()
        await reader.close()

    asyncio.run(stop_mid_take())
    after = LogSubscription(record, log, ack_deadline_seconds=600).take(10)
    assert [(json.loads(x.data)["n"], x.attempt) for x in after] == [(2, 2), (3, 2)]
