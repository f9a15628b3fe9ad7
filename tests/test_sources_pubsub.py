"""GCPPubSubSubscription on Google's Pub/Sub emulator, made by the local target's apply and read
with the PUBSUB reader (the client code the cloud uses): acks, nacks, leases, the emulator's
dead-letter policy, a restart of the emulator, destroy; and Cloud Storage notifications read as
file change events whose blob downloads through gcp-storage-emulator."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from fakes.cloudbuild import storage_emulator
from gcloud.aio.pubsub import SubscriberMessage

from bfctl.providers.local import LocalProvider
from bfctl.providers.local.pubsub import MODE_VARIABLE
from bfctl.runtime.redelivery import Backoff
from bfctl.runtime.sinks import writer_for
from bfctl.runtime.sources import Delivery, SourceReader, reader_for
from bfctl.runtime.sources.pubsub import IDLE_FIRST_SECONDS, PubSubReader, StorageDownloads
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.io.gcp import GCPPubSubSubscription, GCPPubSubTopic
from buildflow.io.primitive import Primitive
from buildflow.storage.engines import Engine
from buildflow.types.gcp import GCSChangeStreamEventType, GCSFileChangeEvent

DEAD = GCPPubSubTopic("my-project", "events-dead")


def subscription(name: str, **options: object) -> GCPPubSubSubscription:
    """A subscription with a topic of its own (each test reads only what it published)."""
    topic = GCPPubSubTopic("my-project", f"{name}-topic")
    return GCPPubSubSubscription("my-project", name).options(topic=topic, **{"ack_deadline_seconds": 10, **options})


ACKS = subscription("acks")
LEASES = subscription("leases")
DEAD_LETTERED = subscription("dead-lettered", max_delivery_attempts=5, dead_letter_topic=DEAD)
DEAD_WATCH = GCPPubSubSubscription("my-project", "dead-watch").options(topic=DEAD)
GONE = subscription("gone")
STOPPED = subscription("stopped", ack_deadline_seconds=600)
SUBSCRIPTIONS = [ACKS, LEASES, DEAD_LETTERED, DEAD_WATCH, GONE, STOPPED]
PRIMITIVES: list[Primitive] = [DEAD, *(s.topic for s in SUBSCRIPTIONS if s.topic not in (None, DEAD)), *SUBSCRIPTIONS]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalProvider]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MODE_VARIABLE, "emulator")
        local = LocalProvider(tmp_path_factory.mktemp("project"), "dev")
        try:
            local.apply(local.plan(PRIMITIVES))
            yield local
        finally:
            local.destroy()


def publish(provider: LocalProvider, sub: GCPPubSubSubscription, *numbers: int) -> None:
    async def run() -> None:
        assert sub.topic is not None
        writer = writer_for(sub.topic, None, ResourceOutputs(provider.outputs()), provider.project_dir)
        await writer.start()
        await writer.write([{"n": n} for n in numbers])
        await writer.stop()

    asyncio.run(run())


def numbers(deliveries: list[Delivery]) -> list[int]:
    return sorted(json.loads(d.data)["n"] for d in deliveries)


async def pull_until(reader: SourceReader, count: int, deadline: float = 30.0) -> list[Delivery]:
    """Pull until ``count`` deliveries came (a pull gives what the emulator has, maybe fewer)."""
    got: list[Delivery] = []
    end = time.monotonic() + deadline
    while len(got) < count:
        assert time.monotonic() < end, f"only {len(got)} of {count} messages came"
        got += await reader.pull(100)
    return got


def emulator_status(provider: LocalProvider, sub: GCPPubSubSubscription) -> int:
    api_root = provider.outputs()[DEAD.primitive_id()]["api_root"]
    try:
        with urllib.request.urlopen(f"{api_root}/{sub.subscription_id}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_apply_makes_the_subscription_and_the_reader_pulls_acks_and_nacks(provider: LocalProvider) -> None:
    out = provider.outputs()[ACKS.primitive_id()]
    assert out["engine"] == Engine.PUBSUB and out["subscription"] == "projects/my-project/subscriptions/acks"
    assert out["ack_deadline_seconds"] == 10 and emulator_status(provider, ACKS) == 200
    publish(provider, ACKS, 1, 2, 3)

    async def consume() -> tuple[list[int], list[int], list[int | None]]:
        reader = reader_for(ACKS, provider.outputs(), provider.project_dir)
        await reader.open()
        first = await pull_until(reader, 3)
        await reader.ack([d.ack_id for d in first if json.loads(d.data)["n"] != 2])
        await reader.nack([d.ack_id for d in first if json.loads(d.data)["n"] == 2])
        again = await pull_until(reader, 1)
        await reader.ack([d.ack_id for d in again])
        await reader.close()
        return numbers(first), numbers(again), [d.delivery_attempt for d in again]

    # the emulator counts delivery attempts only on subscriptions with a dead-letter policy: the
    # reader counts those it saw on the others (the nacked one came again after 1 s)
    assert asyncio.run(consume()) == ([1, 2, 3], [2], [2])


def test_a_lease_ends_unless_extended(provider: LocalProvider) -> None:
    publish(provider, LEASES, 10, 11)

    async def consume() -> tuple[list[int], list[int]]:
        reader = reader_for(LEASES, provider.outputs(), provider.project_dir)
        await reader.open()
        first = await pull_until(reader, 2)
        short = [d.ack_id for d in first if json.loads(d.data)["n"] == 10]
        kept = [d.ack_id for d in first if json.loads(d.data)["n"] == 11]
        await reader.extend(short, 1)  # its lease now ends in a second
        await reader.extend(kept, 60)
        again = await pull_until(reader, 1)  # 10 comes again; 11 stays leased past the 10 s deadline
        await reader.ack([d.ack_id for d in again])
        await reader.ack(kept)
        await reader.close()
        return numbers(first), numbers(again)

    assert asyncio.run(consume()) == ([10, 11], [10])


def test_the_emulator_dead_letters_after_max_delivery_attempts(provider: LocalProvider) -> None:
    publish(provider, DEAD_LETTERED, 20)

    async def fail() -> tuple[list[int | None], Delivery]:
        reader = reader_for(DEAD_LETTERED, provider.outputs(), provider.project_dir)
        watcher = reader_for(DEAD_WATCH, provider.outputs(), provider.project_dir)
        await reader.open()
        await watcher.open()
        attempts: list[int | None] = []
        for _ in range(5):
            batch = await pull_until(reader, 1)
            attempts += [d.delivery_attempt for d in batch]
            await reader.nack([d.ack_id for d in batch])
        assert await reader.pull(100) == []  # the emulator forwards it when the subscription is pulled again
        dead = (await pull_until(watcher, 1))[0]
        await watcher.ack([dead.ack_id])
        await reader.close()
        await watcher.close()
        return attempts, dead

    attempts, dead = asyncio.run(fail())
    assert attempts == [1, 2, 3, 4, 5]
    assert json.loads(dead.data) == {"n": 20}
    assert dead.attributes["CloudPubSubDeadLetterSourceSubscription"] == "dead-lettered"


def test_a_reader_closed_while_idle_leaves_no_pull_to_take_the_next_messages(provider: LocalProvider) -> None:
    """A worker stopping while idle closes its reader; messages published next go to the
    worker that starts after it within seconds, not after the 600 s ack deadline."""

    async def stop_while_idle() -> None:
        reader = reader_for(STOPPED, provider.outputs(), provider.project_dir)
        await reader.open()
        assert await reader.pull(100) == []  # nothing published: the reader is waiting for messages
        await reader.close()

    asyncio.run(stop_while_idle())
    for n in range(20):  # one at a time, as a busy publisher does
        publish(provider, STOPPED, n)

    async def successor() -> list[int]:
        reader = reader_for(STOPPED, provider.outputs(), provider.project_dir)
        await reader.open()
        got = await pull_until(reader, 20, deadline=60)
        await reader.ack([d.ack_id for d in got])
        await reader.close()
        return numbers(got)

    assert asyncio.run(successor()) == list(range(20))


def test_notifications_are_file_change_events_whose_blob_downloads(provider: LocalProvider, tmp_path: Path) -> None:
    with storage_emulator(tmp_path) as storage_root:

        async def run() -> tuple[GCSFileChangeEvent, bytes, bytes]:
            async with aiohttp.ClientSession() as session:
                made = await session.post(f"{storage_root}/storage/v1/b?project=my-project", json={"name": "drops"})
                assert made.status == 200, await made.text()
                put = await session.post(
                    f"{storage_root}/upload/storage/v1/b/drops/o?uploadType=media&name=in/a.csv", data=b"x,y\n1,2\n"
                )
                assert put.status == 200, await put.text()
                attributes = {"bucketId": "drops", "objectId": "in/a.csv", "eventType": "OBJECT_FINALIZE"}
                api_root = provider.outputs()[DEAD.primitive_id()]["api_root"]
                message = {"data": "e30=", "attributes": attributes}
                topic = f"{api_root}/projects/my-project/topics/acks-topic"
                published = await session.post(f"{topic}:publish", json={"messages": [message]})
                assert published.status == 200
            out = {**provider.outputs()[ACKS.primitive_id()], "notifications": True, "storage_api_root": storage_root}
            reader = reader_for(ACKS, {ACKS.primitive_id(): out}, provider.project_dir)
            assert isinstance(reader, PubSubReader) and isinstance(reader.downloads, StorageDownloads)
            await reader.open()
            (delivery,) = await pull_until(reader, 1)
            event = delivery.value
            assert isinstance(event, GCSFileChangeEvent)
            from_thread = await asyncio.to_thread(lambda: event.blob)  # a sync handler's thread
            from_loop = event.blob  # an async handler
            await reader.ack([delivery.ack_id])
            await reader.close()
            return event, from_thread, from_loop

        event, from_thread, from_loop = asyncio.run(run())
    assert event.file_path == "in/a.csv" and event.event_type == GCSChangeStreamEventType.OBJECT_FINALIZE
    assert event.metadata["bucketId"] == "drops"
    assert from_thread == from_loop == b"x,y\n1,2\n"


def test_subscriptions_come_back_after_an_emulator_restart_and_go_with_destroy(provider: LocalProvider) -> None:
    provider.pubsub.service.stop()  # as after a reboot: the emulator forgot everything
    assert provider.plan(PRIMITIVES).counts()["noop"] == 0
    provider.ensure_running()
    assert provider.plan(PRIMITIVES).counts()["create"] == 0
    assert emulator_status(provider, DEAD_LETTERED) == 200
    publish(provider, ACKS, 30)

    async def consume() -> list[int]:
        reader = reader_for(ACKS, provider.outputs(), provider.project_dir)
        await reader.open()
        got = await pull_until(reader, 1)
        await reader.ack([d.ack_id for d in got])
        await reader.close()
        return numbers(got)

    assert asyncio.run(consume()) == [30]
    provider.apply(provider.plan([p for p in PRIMITIVES if p is not GONE]))
    assert emulator_status(provider, GONE) == 404
    assert os.environ.get(MODE_VARIABLE) == "emulator"


class ScriptedSubscriber:
    """Stands in for Pub/Sub: each ``pull_now`` answers the next of ``answers`` (message ids)."""

    def __init__(self, answers: list[list[str]]) -> None:
        self.answers = answers

    async def pull_now(self, subscription: str, max_messages: int) -> list[SubscriberMessage]:
        ids = self.answers.pop(0)
        return [
            SubscriberMessage.from_repr(
                {"ackId": f"ack-{i}", "message": {"messageId": i, "data": "", "publishTime": "2026-01-01T00:00:00Z"}}
            )
            for i in ids
        ]


class RecordedRests(PubSubReader):
    """Records the pauses between pulls instead of taking them."""

    def __init__(self) -> None:
        super().__init__("projects/p/subscriptions/s", None, 10.0, "scripted", Backoff())
        self.rests: list[float] = []

    async def _rest(self, seconds: float) -> None:
        self.rests.append(seconds)


def test_an_empty_answer_while_a_backlog_drains_is_asked_again_at_once_then_idle_pulls_back_off() -> None:
    reader = RecordedRests()
    reader._client = ScriptedSubscriber([["1"], [], ["2"], [], [], [], ["3"]])

    async def run() -> list[list[str]]:
        return [[d.ack_id for d in await reader.pull(100)] for _ in range(3)]

    assert asyncio.run(run()) == [["ack-1"], ["ack-2"], ["ack-3"]]
    assert reader.rests == [0.0, 0.0, IDLE_FIRST_SECONDS, 2 * IDLE_FIRST_SECONDS]
