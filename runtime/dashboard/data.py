"""The Data page's figures: each sink's rows per second, queue, last write and last error, and
each consumer's handled and failed messages, sampled once a second from the counters
``/_bf/metrics`` reads (nothing is added to the request path)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bfctl.runtime.batching import Batcher
    from bfctl.runtime.consumers import CompiledConsumer

#: Seconds between samples, and how many the rows-per-second chart keeps.
INTERVAL = 1.0
HISTORY = 60


class _SinkTrack:
    __slots__ = ("errors", "last_error", "last_write", "rates", "rows")

    def __init__(self, batcher: Batcher) -> None:
        self.rows = batcher.rows_written
        self.errors = dict(batcher.write_errors)
        self.rates: deque[float] = deque([0.0] * HISTORY, maxlen=HISTORY)
        self.last_write: float | None = None
        self.last_error: dict[str, Any] | None = None


class DataSampler:
    """Reads the worker's batchers and consumers every :data:`INTERVAL` seconds."""

    def __init__(self, batchers: Mapping[str, Batcher], consumers: list[CompiledConsumer]) -> None:
        self._batchers = batchers  # the sink registry's, filled when the worker starts
        self._consumers = consumers
        self._tracks: dict[str, _SinkTrack] = {}
        self._sampled = time.monotonic()

    def sample(self) -> None:
        now, wall = time.monotonic(), time.time()
        elapsed = max(now - self._sampled, 1e-3)
        self._sampled = now
        for name, batcher in self._batchers.items():
            track = self._tracks.get(name)
            if track is None:
                self._tracks[name] = _SinkTrack(batcher)
                continue
            written = batcher.rows_written - track.rows
            track.rows = batcher.rows_written
            track.rates.append(round(written / elapsed, 1))
            if written:
                track.last_write = wall
            grown = [reason for reason, count in batcher.write_errors.items() if count > track.errors.get(reason, 0)]
            if grown:
                track.last_error = {"time": wall, "reason": ", ".join(grown)}
                track.errors = dict(batcher.write_errors)

    def snapshot(self) -> dict[str, Any]:
        sinks = []
        for name, batcher in sorted(self._batchers.items()):
            track = self._tracks.get(name)
            sinks.append(
                {
                    "id": name,
                    "description": batcher.writer.description,
                    "rows_written": batcher.rows_written,
                    "batches_written": batcher.batches_written,
                    "queued": batcher.queued,
                    "write_errors": dict(batcher.write_errors),
                    "rows_per_second": list(track.rates) if track else [0.0] * HISTORY,
                    "last_write": track.last_write if track else None,
                    "last_error": track.last_error if track else None,
                }
            )
        consumers = [
            {
                "name": c.name,
                "source": c.owner,
                "handled": c.handled,
                "failed": c.failed,
                "given_up": c.failures.set_aside,
            }
            for c in self._consumers
        ]
        return {"sinks": sinks, "consumers": consumers}


def merged(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several workers' snapshots as one: counts summed, the charts summed second by second, the
    latest write and error of any worker, and how many workers answered."""
    sinks: dict[str, dict[str, Any]] = {}
    consumers: dict[str, dict[str, Any]] = {}
    for part in parts:
        for sink in part["sinks"]:
            if (known := sinks.get(sink["id"])) is None:
                sinks[sink["id"]] = {**sink, "write_errors": dict(sink["write_errors"])}
                continue
            for count in ("rows_written", "batches_written", "queued"):
                known[count] += sink[count]
            for reason, count in sink["write_errors"].items():
                known["write_errors"][reason] = known["write_errors"].get(reason, 0) + count
            rates = zip(known["rows_per_second"], sink["rows_per_second"], strict=True)
            known["rows_per_second"] = [round(a + b, 1) for a, b in rates]
            known["last_write"] = _later(known["last_write"], sink["last_write"], float)
            known["last_error"] = _later(known["last_error"], sink["last_error"], lambda e: e["time"])
        for consumer in part["consumers"]:
            if (seen := consumers.get(consumer["name"])) is None:
                consumers[consumer["name"]] = dict(consumer)
                continue
            for count in ("handled", "failed", "given_up"):
                seen[count] += consumer[count]
    return {
        "sinks": [sinks[key] for key in sorted(sinks)],
        "consumers": list(consumers.values()),
        "workers": len(parts),
    }


def _later(a: Any, b: Any, when: Callable[[Any], float]) -> Any:
    """The later of two (either may be None)."""
    if a is None or b is None:
        return b if a is None else a
    return a if when(a) >= when(b) else b
