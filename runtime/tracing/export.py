"""Sampled traces sent over OTLP/HTTP, in batches, off the request path.

A finished trace is appended to a bounded queue (a request never waits on the network); one
task per worker sends what has gathered every ``OTEL_BSP_SCHEDULE_DELAY`` ms, or sooner when a
batch is full, one request at a time with a timeout. A slow or dead collector fills the queue,
and from then on traces are dropped and counted (``buildflow_trace_spans`` in /_bf/metrics)
rather than held in memory. The body is OTLP's JSON encoding (orjson, already loaded): the
protobuf one would need protobuf and opentelemetry-proto imported in every traced worker.

Where: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (the whole URL), else
``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``; ``OTEL_EXPORTER_OTLP_HEADERS`` are sent
(their values are never logged). ``BFCTL_TRACES=cloudtrace`` (set on gcp) sends to Cloud
Trace's OTLP endpoint with the service account's token from the metadata server.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from bfctl.runtime.errors import StartupError
from bfctl.runtime.tracing.spans import Attributes, Trace, epoch_ns, events_of
from buildflow.deployed import TRACES_ENV

log = logging.getLogger("buildflow.runtime")

MODE_VARIABLE = TRACES_ENV
CLOUD_TRACE_URL = "https://telemetry.googleapis.com/v1/traces"
_TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"  # noqa: S105 - a URL path
#: Seconds before a metadata token's expiry at which a new one is asked for.
_TOKEN_MARGIN = 60.0


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise StartupError(f"{name}={raw!r}: use a whole number above 0")
    return int(raw)


def _headers(raw: str) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS``: ``key=value`` pairs, comma separated, values URL-encoded."""
    headers = {}
    for pair in raw.split(","):
        key, sep, value = pair.partition("=")
        if not pair.strip():
            continue
        if not sep or not key.strip():
            # the value may be a secret: the message names the key alone
            raise StartupError(f"OTEL_EXPORTER_OTLP_HEADERS: `{key.strip()}` has no `=value`; use key=value,key=value")
        headers[key.strip()] = urllib.parse.unquote(value.strip())
    return headers


def from_environment(environ: Mapping[str, str]) -> Exporter | None:
    """The exporter the environment asks for: OTLP when an endpoint is set, Cloud Trace when
    ``BFCTL_TRACES=cloudtrace``; ``None`` when neither (or ``OTEL_SDK_DISABLED=true``)."""
    mode = environ.get(MODE_VARIABLE, "").strip().lower()
    if mode not in ("", "otlp", "cloudtrace", "off"):
        raise StartupError(f"{MODE_VARIABLE}={mode!r}: use otlp, cloudtrace or off")
    if mode == "off" or environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    url = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if not url and (base := environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()):
        url = base.rstrip("/") + "/v1/traces"
    if mode == "cloudtrace":
        url = url or CLOUD_TRACE_URL
    elif not url:
        return None
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    if protocol.strip() not in ("", "http/json"):
        raise StartupError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol.strip()!r}: bfctl sends OTLP over HTTP as JSON (http/json), "
            "which the OpenTelemetry Collector and Cloud Trace accept; unset it or set http/json"
        )
    resource: dict[str, str] = {"service.name": environ.get("OTEL_SERVICE_NAME") or environ.get("K_SERVICE") or "bfctl"}
    for pair in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            resource.setdefault(key.strip(), urllib.parse.unquote(value.strip()))
    token = None
    if mode == "cloudtrace":
        from bfctl.runtime.cloud_logging import project_id

        project = project_id(environ)
        if project is None:
            raise StartupError(f"{MODE_VARIABLE}=cloudtrace: set GOOGLE_CLOUD_PROJECT (Cloud Trace needs the project)")
        resource["gcp.project_id"] = project
        host = environ.get("GCE_METADATA_HOST", "metadata.google.internal")
        token = MetadataToken(f"http://{host}{_TOKEN_PATH}")
    return Exporter(
        url,
        _headers(environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or environ.get("OTEL_EXPORTER_OTLP_HEADERS", "")),
        resource,
        token=token,
        max_queue=_int(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048),
        batch=_int(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
        delay=_int(environ, "OTEL_BSP_SCHEDULE_DELAY", 1000) / 1000,
        timeout=_int(environ, "OTEL_EXPORTER_OTLP_TIMEOUT", 10000) / 1000,
    )


class MetadataToken:
    """The service account's access token, from the metadata server, kept until near its expiry."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._token = ""
        self._until = 0.0

    async def header(self, session: aiohttp.ClientSession) -> str:
        if time.monotonic() >= self._until:
            async with session.get(self.url, headers={"Metadata-Flavor": "Google"}) as response:
                response.raise_for_status()
                body = await response.json(content_type=None)
            self._token = body["access_token"]
            self._until = time.monotonic() + float(body.get("expires_in", 0)) - _TOKEN_MARGIN
        return f"Bearer {self._token}"


class Exporter:
    """One worker's queue of sampled traces and the task that sends them."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        resource: dict[str, str],
        *,
        token: MetadataToken | None = None,
        max_queue: int = 2048,
        batch: int = 512,
        delay: float = 1.0,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.headers = {**headers, "Content-Type": "application/json"}
        self.resource = [_attribute(k, v) for k, v in resource.items()]
        self.token = token
        self.max_queue = max_queue
        self.batch = batch
        self.delay = delay
        self.timeout = timeout
        self._queue: collections.deque[Trace] = collections.deque()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._last_failure = ""
        #: Spans sent, dropped (the queue was full) and lost to a failed send, for /_bf/metrics.
        self.counts = {"exported": 0, "dropped": 0, "failed": 0}

    def offer(self, trace: Trace) -> None:
        """Queue a finished trace (or drop it, counted, when the queue is full): never waits."""
        queue = self._queue
        if len(queue) >= self.max_queue or self._closing:
            self.counts["dropped"] += trace.span_count()
            return
        queue.append(trace)
        if len(queue) >= self.batch:
            self._full.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._send_forever(), name="trace export")

    async def stop(self) -> None:
        """Send what is queued (bounded by the timeout), then stop."""
        self._closing = True
        self._full.set()
        if self._task is not None:
            await self._task

    async def _send_forever(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.delay)
                self._full.clear()
                while self._queue:
                    await self._send(session, self._take())
            # what is left, unless the collector fails: a dead one holds the exit for one timeout at most
            while self._queue and await self._send(session, self._take()):
                pass
            self.counts["dropped"] += sum(t.span_count() for t in self._queue)
            self._queue.clear()

    def _take(self) -> list[Trace]:
        queue, count = self._queue, min(self.batch, len(self._queue))
        return [queue.popleft() for _ in range(count)]

    async def _send(self, session: aiohttp.ClientSession, traces: list[Trace]) -> bool:
        """Whether the collector took ``traces`` (a failure is counted and logged here)."""
        spans = sum(t.span_count() for t in traces)
        # built in a thread: a full batch takes milliseconds, which the event loop would stall for
        body = await asyncio.to_thread(self.encode, traces)
        try:
            headers = self.headers
            if self.token is not None:
                headers = {**headers, "Authorization": await self.token.header(session)}
            async with session.post(self.url, data=body, headers=headers) as response:
                if response.status >= 300:
                    detail = (await response.text())[:300]
                    self._failed(spans, f"HTTP {response.status}: {_reason(detail)}")
                    return False
        except (aiohttp.ClientError, TimeoutError, OSError, KeyError, ValueError) as e:
            self._failed(spans, f"{type(e).__name__}: {e}")
            return False
        self.counts["exported"] += spans
        self._last_failure = ""
        return True

    def _failed(self, spans: int, why: str) -> None:
        self.counts["failed"] += spans
        if why != self._last_failure:  # once per kind of failure, not once per batch
            log.warning("sending %d spans to %s failed: %s", spans, _where(self.url), why)
            self._last_failure = why

    def encode(self, traces: list[Trace]) -> bytes:
        return orjson.dumps(self.request_body(traces))

    def request_body(self, traces: list[Trace]) -> dict[str, Any]:
        """OTLP's ExportTraceServiceRequest in its JSON encoding (ids as hex, times as strings)."""
        return {
            "resourceSpans": [
                {
                    "resource": {"attributes": self.resource},
                    "scopeSpans": [
                        {
                            "scope": {"name": "bfctl"},
                            "spans": [span for trace in traces for span in _spans(trace)],
                        }
                    ],
                }
            ]
        }


def _where(url: str) -> str:
    """The URL without credentials or query (it may carry a key)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _reason(detail: str) -> str:
    """Google's error JSON says why in ``error.message``; anything else is shown as sent."""
    try:
        message = orjson.loads(detail)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return detail.strip() or "(no body)"
    return str(message)


def _attribute(key: str, value: str | float | bool) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


#: OTLP's span kinds: the request's root is the server's, the rest internal.
_SERVER, _INTERNAL = 2, 1


#: Attribute dicts already in OTLP's shape, by identity: the spans of one step or route share
#: theirs, so each is converted once. An entry holds its dict, so its id cannot be reused meanwhile.
_converted: dict[int, tuple[Attributes, list[dict[str, Any]]]] = {}
_CONVERTED_MOST = 1024
_NO_ATTRIBUTES: Attributes = {}


def _attributes(given: Attributes) -> list[dict[str, Any]]:
    found = _converted.get(id(given))
    if found is not None and found[0] is given:
        return found[1]
    converted = [_attribute(k, v) for k, v in given.items()]
    if len(_converted) >= _CONVERTED_MOST:
        _converted.clear()
    _converted[id(given)] = (given, converted)
    return converted


def _spans(trace: Trace) -> list[dict[str, Any]]:
    trace_id = f"{trace.trace_id:032x}"
    base = epoch_ns(0)  # perf_counter_ns to the epoch's
    out = []
    for span in trace.spans:
        converted: dict[str, Any] = {
            "traceId": trace_id,
            "spanId": f"{span.span_id:016x}",
            "name": span.name,
            "kind": _SERVER if span is trace and trace.kind == "request" else _INTERNAL,
            "startTimeUnixNano": str(base + span.start),
            "endTimeUnixNano": str(base + (span.end or span.start)),
            # a root's are made for the call (its status added); the others' are the span's own
            "attributes": [_attribute(k, v) for k, v in trace.attributes_of(trace).items()]
            if span is trace
            else _attributes(span.attributes or _NO_ATTRIBUTES),
        }
        if span.parent_id:
            converted["parentSpanId"] = f"{span.parent_id:016x}"
        if span.error is not None:
            converted["status"] = {"code": 2, "message": span.error}
        events = events_of(span)
        if events:
            converted["events"] = [
                {
                    "timeUnixNano": str(base + at),
                    "name": name,
                    "attributes": [_attribute(k, v) for k, v in given.items()],
                }
                for name, at, given in events
            ]
        out.append(converted)
    return out
