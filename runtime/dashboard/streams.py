"""What waits in the subscriptions consumers read, for the Data page: on the local target's
durable topic logs, the messages not yet acknowledged (those after the subscription's committed
offset) and the messages in its dead-letter topic's log.

The Pub/Sub emulator reports neither (Cloud Pub/Sub reports them to Cloud Monitoring), so a
subscription of the emulator has none to show. Read when a page asks, off the event loop: it
counts lines of files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bfctl.runtime.sinks.base import local_path
from buildflow.storage.engines import Engine

_CHUNK = 1 << 20


def backlog(outputs: Mapping[str, Any], project_dir: Path) -> dict[str, int] | None:
    """``waiting`` and, with a dead-letter topic, ``dead_lettered`` message counts; None when the
    source is no local topic log's subscription."""
    if outputs.get("engine") != Engine.LOG or "log" not in outputs:
        return None
    from bfctl.runtime.sources.log import log_subscription

    subscription = log_subscription(outputs, project_dir)
    counts = {"waiting": _lines(subscription.log, subscription.committed())}
    if dead_letter := outputs.get("dead_letter_log"):
        counts["dead_lettered"] = _lines(local_path(dead_letter, project_dir), 0)
    return counts


def _lines(path: Path, offset: int) -> int:
    """Messages (whole lines) from ``offset`` to the end of a topic log."""
    try:
        log = path.open("rb")
    except FileNotFoundError:  # nothing published yet
        return 0
    with log:
        log.seek(offset)
        count = 0
        while chunk := log.read(_CHUNK):
            count += chunk.count(b"\n")
        return count
