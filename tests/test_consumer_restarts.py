"""``bfctl serve`` stopped while its consumer waits for messages, or while a handler outlasts the
grace period, then started again: the messages are all consumed within seconds by the new
server, on Google's Pub/Sub emulator and on the durable local log, not after the subscription's
600 s ack deadline because the stopped server's pull or lease still held them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import consumed_within, post_numbers, serving, write

from bfctl.providers.local import LocalProvider
from bfctl.runtime.sinks import writer_for
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.io.gcp import GCPPubSubTopic

FLOW = """\
import asyncio
import dataclasses
from pathlib import Path

from buildflow import Flow
from buildflow.io.gcp import GCPPubSubSubscription, GCPPubSubTopic


@dataclasses.dataclass
class Msg:
    n: int


topic = GCPPubSubTopic("local-project", "events")
subscription = GCPPubSubSubscription("local-project", "events-sub").options(topic=topic)
app = Flow()


@app.collector("/publish", sink=topic)
def publish(msg: Msg) -> Msg:
    return msg


@app.consumer(subscription)
async def consume(msg: Msg) -> None:
    print(f"handling {msg.n}", flush=True)
    while Path("hold").exists():
        await asyncio.sleep(0.05)
    print(f"consumed {msg.n}", flush=True)
"""
TOPIC = GCPPubSubTopic("local-project", "events")
ENGINES = ["emulator", "log"]


@pytest.fixture
def project(tmp_path: Path, destroyed: list[Path]) -> Path:
    write(tmp_path / "flow.py", FLOW)
    destroyed.append(tmp_path)
    return tmp_path


def _publish_while_stopped(project: Path, engine: str, numbers: range) -> set[int]:
    """Publish as another program would while no server runs (the topic's own client code)."""

    async def run() -> None:
        writer = writer_for(TOPIC, None, ResourceOutputs(LocalProvider(project, "dev").outputs()), project)
        await writer.start()
        for start in range(numbers.start, numbers.stop, 10):  # ten at a time, as a busy publisher does
            await writer.write([{"n": n} for n in range(start, min(start + 10, numbers.stop))])
        await writer.stop()

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BFCTL_LOCAL_PUBSUB", engine)
        asyncio.run(run())
    return set(numbers)


@pytest.mark.parametrize("engine", ENGINES)
def test_messages_published_while_the_server_is_stopped_are_consumed_after_a_restart(
    project: Path, bfctl_env: dict[str, str], engine: str
) -> None:
    env = {**bfctl_env, "BFCTL_LOCAL_PUBSUB": engine}
    with serving(["flow.py", "--apply", "--port", "0", "--no-access-log"], project, env) as server:
        first = post_numbers(server, range(1, 6))
        assert consumed_within(server, first) == first, server.output
        assert server.stop() == 0, server.output  # while its consumer waits for more
    published = _publish_while_stopped(project, engine, range(6, 106))
    with serving(["flow.py", "--port", "0", "--no-access-log"], project, env) as server:
        assert consumed_within(server, published, seconds=60) == published, server.output
        assert server.stop() == 0, server.output


@pytest.mark.parametrize("engine", ENGINES)
def test_a_message_whose_handler_outlasts_the_grace_period_is_consumed_after_a_restart(
    project: Path, bfctl_env: dict[str, str], engine: str
) -> None:
    env = {**bfctl_env, "BFCTL_LOCAL_PUBSUB": engine}
    (project / "hold").touch()
    args = ["flow.py", "--port", "0", "--no-access-log", "--grace", "0.5"]
    with serving([*args, "--apply"], project, env) as server:
        published = post_numbers(server, range(1, 2))
        server.wait_for(lambda line: line == "handling 1")
        assert server.stop() == 0, server.output
    (project / "hold").unlink()
    with serving(args, project, env) as server:
        assert consumed_within(server, published, seconds=60) == published, server.output
        assert server.stop() == 0, server.output
