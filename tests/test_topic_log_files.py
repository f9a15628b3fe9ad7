"""The durable local log standing in for a topic, emptied or deleted by hand while ``bfctl serve``
runs: every message a publish acknowledged afterwards reaches the consumer (counted: published
against consumed), and the server says once what happened to the file."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import Server, consumed_within, post_numbers, serving, write

PRINTING_FLOW = """\
import dataclasses

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
def consume(msg: Msg) -> None:
    print(f"consumed {msg.n}", flush=True)
"""


def _topic_log(project: Path) -> Path:
    return project / ".buildflow" / "local" / "dev" / "pubsub" / "local-project" / "events.jsonl"


@pytest.fixture
def served(tmp_path: Path, bfctl_env: dict[str, str]) -> Iterator[Server]:
    write(tmp_path / "flow.py", PRINTING_FLOW)
    env = {**bfctl_env, "BFCTL_LOCAL_PUBSUB": "log"}
    with serving(["flow.py", "--apply", "--port", "0", "--no-access-log"], tmp_path, env) as server:
        before = post_numbers(server, range(1, 6))
        assert consumed_within(server, before) == before, server.output
        yield server
        assert server.stop() == 0, server.output


def _after(server: Server, mishap: Callable[[Path], None], project: Path) -> set[int]:
    """Numbers consumed out of those published after ``mishap`` befell the topic's log."""
    mishap(_topic_log(project))
    return consumed_within(server, post_numbers(server, range(6, 26)))


def test_messages_published_after_the_log_is_emptied_are_all_consumed(served: Server, tmp_path: Path) -> None:
    def empty(log: Path) -> None:
        with open(log, "r+b") as f:  # what `: > events.jsonl` does
            f.truncate(0)

    assert _after(served, empty, tmp_path) == set(range(6, 26))
    assert sum("events.jsonl) was emptied while in use" in line for line in served.lines) == 1, served.output


def test_messages_published_after_the_log_is_deleted_are_all_consumed(served: Server, tmp_path: Path) -> None:
    assert _after(served, os.unlink, tmp_path) == set(range(6, 26))
    assert _topic_log(tmp_path).exists()
    assert sum("events.jsonl) was deleted or replaced while in use" in line for line in served.lines) == 1, (
        served.output
    )
