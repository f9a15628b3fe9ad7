"""``/_bf/metrics``: what one worker served and wrote, in Prometheus' text format.

Requests are counted in plain per-worker structures (a dict of statuses and a list of
histogram buckets per route, filled by a few int operations) and turned into metric families
only when scraped, so the request path holds no lock and no prometheus-client object. Each
worker answers for itself: with several workers a scrape reaches one of them (``worker``
labels each sample with its process id, so series from different workers never mix).
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from bfctl.runtime.errors import StartupError

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from bfctl.runtime.batching import Batcher
    from bfctl.runtime.consumers import CompiledConsumer

METRICS_PATH = "/_bf/metrics"
#: ``on`` or ``off``: whether ``METRICS_PATH`` is served. Off by default on Cloud Run
#: (``K_SERVICE`` set): a public service would show its route, sink and consumer names to anyone,
#: and a scrape through the service's URL reaches one worker of one instance at random anyway.
METRICS_VARIABLE = "BFCTL_METRICS"

#: Upper bounds (seconds) of the request latency buckets: from a fast in-memory handler to a slow query.
LATENCY_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Upper bounds (rows) of the batch size buckets: a lone request's row up to a full default batch.
BATCH_BOUNDS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def served(environ: Mapping[str, str]) -> bool:
    """Whether ``/_bf/metrics`` is served: as ``$BFCTL_METRICS`` says, else everywhere but Cloud Run."""
    value = environ.get(METRICS_VARIABLE, "").strip().lower() or ("off" if environ.get("K_SERVICE") else "on")
    if value not in ("on", "off"):
        raise StartupError(f"{METRICS_VARIABLE}={value!r}: use on or off")
    return value == "on"


class Histogram:
    """Counts per bucket (the last one above every bound) and their sum; not cumulative."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus' buckets: ``le`` bound and the count at or below it, ending with +Inf."""
        running, out = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(running)))
        return out


class RouteStats:
    """One route's requests in this worker: count by status, and latency."""

    __slots__ = ("latency", "method", "route", "statuses")

    def __init__(self, method: str, route: str) -> None:
        self.method = method
        self.route = route
        self.statuses: dict[int, int] = {}
        self.latency = Histogram(LATENCY_BOUNDS)


def timed(handle: Handler, stats: RouteStats) -> Handler:
    """``handle`` counting its answers in ``stats``: two clock reads, a bisect and a few int
    and dict operations (the histogram's update inlined: a method call costs as much)."""
    statuses, latency = stats.statuses, stats.latency
    counts, bounds = latency.counts, latency.bounds
    clock, bucket = time.perf_counter, bisect.bisect_left

    async def counted(request: web.Request) -> web.StreamResponse:
        start = clock()
        try:
            response = await handle(request)
        except Exception as e:  # aiohttp's HTTPException from a middleware, or a bug: still counted
            status = e.status if isinstance(e, web.HTTPException) else 500
            statuses[status] = statuses.get(status, 0) + 1
            latency.observe(clock() - start)
            raise
        elapsed = clock() - start
        status = response.status
        statuses[status] = statuses.get(status, 0) + 1
        counts[bucket(bounds, elapsed)] += 1
        latency.total += elapsed
        return response

    return counted


class WorkerMetrics:
    """Everything ``/_bf/metrics`` reports for one worker, read when scraped."""

    def __init__(
        self,
        routes: list[RouteStats],
        batchers: Mapping[str, Batcher],
        consumers: list[CompiledConsumer],
    ) -> None:
        self.routes = routes
        self._batchers = batchers  # the sink registry's, filled when the worker starts
        self._consumers = consumers
        #: Spans the trace exporter sent, dropped and failed to send (when this worker exports).
        self.trace_spans: Mapping[str, int] | None = None

    def families(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        worker = str(os.getpid())
        requests = CounterMetricFamily(
            "buildflow_requests",
            "HTTP requests answered, by route and status.",
            labels=["worker", "method", "route", "status"],
        )
        latency = HistogramMetricFamily(
            "buildflow_request_duration_seconds",
            "Time from a request reaching its handler to its response.",
            labels=["worker", "method", "route"],
        )
        for stats in self.routes:
            for status, count in sorted(stats.statuses.items()):
                requests.add_metric([worker, stats.method, stats.route, str(status)], count)
            if stats.statuses:
                h = stats.latency
                latency.add_metric([worker, stats.method, stats.route], h.cumulative(), h.total)
        yield requests
        yield latency
        yield from self._sink_families(worker)
        yield from self._consumer_families(worker)
        if self.trace_spans is not None:
            from prometheus_client.core import CounterMetricFamily

            spans = CounterMetricFamily(
                "buildflow_trace_spans",
                "Spans the trace exporter sent, dropped (its queue was full) or lost to a failed send.",
                labels=["worker", "outcome"],
            )
            for outcome, count in self.trace_spans.items():
                spans.add_metric([worker, outcome], count)
            yield spans

    def _sink_families(self, worker: str) -> Iterable[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        queued = GaugeMetricFamily(
            "buildflow_sink_queued_rows", "Rows waiting to be written to a sink.", labels=["worker", "sink"]
        )
        sizes = HistogramMetricFamily(
            "buildflow_sink_batch_rows", "Rows per write to a sink.", labels=["worker", "sink"]
        )
        errors = CounterMetricFamily(
            "buildflow_sink_write_errors",
            "Failed writes to a sink: rejected rows, or the sink unreachable or too slow.",
            labels=["worker", "sink", "reason"],
        )
        for sink, batcher in sorted(self._batchers.items()):
            queued.add_metric([worker, sink], batcher.queued)
            sizes.add_metric([worker, sink], batcher.batch_rows.cumulative(), batcher.batch_rows.total)
            for reason, count in sorted(batcher.write_errors.items()):
                errors.add_metric([worker, sink, reason], count)
        return [queued, sizes, errors]

    def _consumer_families(self, worker: str) -> Iterable[Metric]:
        from prometheus_client.core import CounterMetricFamily

        messages = CounterMetricFamily(
            "buildflow_consumer_messages",
            "Messages a consumer handled (their rows durable) or failed (each failed delivery counts).",
            labels=["worker", "consumer", "outcome"],
        )
        given_up = CounterMetricFamily(
            "buildflow_consumer_messages_given_up",
            "Messages that failed their last delivery attempt: set aside (a file change stream) or sent "
            "to the dead-letter topic; the log names each.",
            labels=["worker", "consumer"],
        )
        for consumer in self._consumers:
            messages.add_metric([worker, consumer.name, "handled"], consumer.handled)
            messages.add_metric([worker, consumer.name, "failed"], consumer.failed)
            given_up.add_metric([worker, consumer.name], consumer.failures.set_aside)
        return [messages, given_up]

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(self))
        return generate_latest(registry)

    async def handle(self, _request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


class _Families:
    """prometheus-client's collector protocol around a worker's metrics."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()
