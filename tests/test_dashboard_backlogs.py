"""The Data page's backlog of a consumer's subscription on the local target's durable topic log:
the messages not yet acknowledged, and those in its dead-letter topic, counted from real files."""

from __future__ import annotations

from pathlib import Path

from bfctl.runtime.dashboard import streams
from bfctl.runtime.sources.log import log_subscription
from buildflow.storage import log_subscription as records


def _publish(log: Path, *messages: str) -> None:
    with log.open("ab") as f:
        f.writelines(f'{{"data": "{m}"}}\n'.encode() for m in messages)


def test_waiting_counts_what_is_not_acknowledged_and_dead_letters_what_was_given_up(tmp_path: Path) -> None:
    topic, dead = tmp_path / "events.jsonl", tmp_path / "events-dead.jsonl"
    _publish(topic, "before")  # published before the subscription existed: never its message
    record = tmp_path / "store.subscription.json"
    records.create(record, topic)
    outputs = {
        "engine": "log",
        "path": str(record),
        "log": str(topic),
        "ack_deadline_seconds": 10,
        "max_delivery_attempts": 5,
        "dead_letter_log": str(dead),
    }
    assert streams.backlog(outputs, tmp_path) == {"waiting": 0, "dead_lettered": 0}

    _publish(topic, "a", "b", "c", "d")
    subscription = log_subscription(outputs, tmp_path)
    leased = subscription.take(3)
    subscription.ack([leased[0].ack_id])  # a acknowledged; b and c leased, not yet acknowledged
    _publish(dead, "x", "y")
    assert streams.backlog(outputs, tmp_path) == {"waiting": 3, "dead_lettered": 2}

    subscription.ack([lease.ack_id for lease in leased[1:]])
    assert streams.backlog({**outputs, "dead_letter_log": None}, tmp_path) == {"waiting": 1}


def test_sources_that_are_no_topic_log_have_no_backlog_to_show(tmp_path: Path) -> None:
    assert streams.backlog({"engine": "pubsub", "subscription": "projects/p/subscriptions/s"}, tmp_path) is None
    assert streams.backlog({"engine": "watch", "path": str(tmp_path)}, tmp_path) is None
    assert streams.backlog({}, tmp_path) is None
