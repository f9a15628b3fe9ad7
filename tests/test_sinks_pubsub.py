"""GCPPubSubTopic sinks: Google's emulator run by the local target (when gcloud has it), and
the durable log that stands in for a topic without it."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bfctl.providers.local import LocalProvider
from bfctl.providers.local.pubsub import MODE_VARIABLE, emulator_available
from bfctl.runtime.sinks import row_converter, schema_from_type, writer_for
from bfctl.runtime.sinks.base import SinkWriter
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.io.gcp import GCPPubSubTopic


@dataclasses.dataclass
class Event:
    user: str
    n: int


def events(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [row_converter(Event)(Event(f"u{i}", i)) for i in range(start, start + count)]


async def write(writer: SinkWriter, *batches: list[dict[str, Any]]) -> None:
    await writer.start()
    for batch in batches:
        await writer.write(batch)
    await writer.stop()


def test_without_the_emulator_a_topic_is_a_durable_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODE_VARIABLE, "log")
    topic = GCPPubSubTopic("my-project", "clicks")
    provider = LocalProvider(tmp_path, "dev")
    plan = provider.plan([topic])
    assert [(c.resource_type, c.action) for c in plan.changes] == [("gcp.pubsub.Topic", "create")]
    provider.apply(plan)
    log = Path(provider.outputs()[topic.primitive_id()]["path"])
    assert log == tmp_path / ".buildflow" / "local" / "dev" / "pubsub" / "my-project" / "clicks.jsonl"

    def writer() -> SinkWriter:
        return writer_for(topic, schema_from_type(Event), ResourceOutputs(provider.outputs()), tmp_path)

    async def two_workers() -> None:
        await asyncio.gather(write(writer(), events(2), events(1, 2)), write(writer(), events(2, 10)))

    asyncio.run(two_workers())
    with open(log, "ab") as f:
        f.write(b'{"user":"torn')  # a worker killed mid-append; never acknowledged
    asyncio.run(write(writer(), events(1, 20)))
    messages = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(m["n"] for m in messages) == [0, 1, 2, 10, 11, 20]
    provider.destroy()
    assert not log.exists() and not (tmp_path / ".buildflow" / "local" / "dev").exists()


def _port_answers(host_port: str) -> bool:
    host, port = host_port.split(":")
    try:
        socket.create_connection((host, int(port)), 0.5).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not emulator_available(), reason="gcloud with the pubsub-emulator component is not installed")
def test_the_emulator_is_a_service_of_the_stack(tmp_path: Path) -> None:
    os.environ.pop(MODE_VARIABLE, None)
    topic = GCPPubSubTopic("my-project", "clicks")
    provider = LocalProvider(tmp_path, "dev")
    plan = provider.plan([topic])
    assert [(c.resource_id, c.action) for c in plan.changes] == [
        ("local:pubsub-emulator", "create"),
        ("projects/my-project/topics/clicks", "create"),
    ]
    try:
        provider.apply(plan)
        out = provider.outputs()[topic.primitive_id()]
        assert out["engine"] == "pubsub" and out["api_root"] == f"http://{out['emulator_host']}/v1"
        subscription = f"{out['api_root']}/projects/my-project/subscriptions/audit"

        async def publish_and_pull() -> list[int]:
            async with aiohttp.ClientSession() as session:
                made = await session.put(subscription, json={"topic": topic.topic_id})
                assert made.status == 200, await made.text()
                writer = writer_for(topic, schema_from_type(Event), ResourceOutputs(provider.outputs()), tmp_path)
                await write(writer, events(1500), events(1, 1500))  # 1,500: two publish calls
                seen: list[int] = []
                while len(seen) < 1501:
                    pulled = await (await session.post(f"{subscription}:pull", json={"maxMessages": 1000})).json()
                    seen += [
                        json.loads(base64.b64decode(m["message"]["data"]))["n"] for m in pulled["receivedMessages"]
                    ]
                    ids = [m["ackId"] for m in pulled["receivedMessages"]]
                    await session.post(f"{subscription}:acknowledge", json={"ackIds": ids})
                return sorted(seen)

        assert asyncio.run(publish_and_pull()) == list(range(1501))

        provider.pubsub.service.stop()  # as after a reboot: the emulator forgot the topic
        assert provider.plan([topic]).counts()["noop"] == 0
        restarted = provider.ensure_running()[topic.primitive_id()]
        assert provider.plan([topic]).counts() == {"create": 0, "update": 0, "replace": 0, "delete": 0, "noop": 2}
        asyncio.run(write(writer_for(topic, None, ResourceOutputs(provider.outputs()), tmp_path), events(1)))
    finally:
        provider.destroy()
    assert not _port_answers(restarted["emulator_host"])
    assert not (tmp_path / ".buildflow" / "local" / "dev").exists()
