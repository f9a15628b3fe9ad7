"""Logs as one JSON object per line, in the shape Cloud Logging parses, each request's lines
tied to its trace.

Cloud Run sends ``X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1`` with every request; a line
that names ``projects/<project>/traces/<TRACE_ID>`` is shown under that request in the Logs
Explorer. The trace lives in a ContextVar set by a middleware, which is installed only when
JSON logs are on: with text logs a request pays nothing for any of this.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime
import json
import logging
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from bfctl.runtime.errors import StartupError

LogFormat = Literal["text", "json"]
TRACE_HEADER = "X-Cloud-Trace-Context"
REQUEST_ID_HEADER = "X-Request-ID"
#: Where the middleware leaves the request's context for the access log and error responses.
REQUEST_CONTEXT = "bf_log_context"
_METADATA_PROJECT = "/computeMetadata/v1/project/project-id"
#: Start-up waits at most this long for the metadata server (only asked on Cloud Run).
_METADATA_TIMEOUT = 1.0
_SEVERITY = {"WARN": "WARNING", "FATAL": "CRITICAL"}


@dataclasses.dataclass(frozen=True, slots=True)
class RequestLogContext:
    """What every line written while handling one request carries."""

    request_id: str
    trace: str | None = None
    span_id: str | None = None
    sampled: bool = False
    #: The project ``trace`` is named in (when known), for a trace id the tracer adopts.
    project: str | None = None


#: Set on an app whose requests get a log context (the tracer then names its trace in it).
JSON_LOGS: web.AppKey[bool] = web.AppKey("bfctl_json_logs", bool)

_current: contextvars.ContextVar[RequestLogContext | None] = contextvars.ContextVar("bf_request_log", default=None)


def current_request_id() -> str | None:
    """The id of the request being handled, when JSON logs are on (error responses name it)."""
    context = _current.get()
    return None if context is None else context.request_id


def log_format(requested: str | None, environ: Mapping[str, str]) -> LogFormat:
    """``json`` or ``text`` as asked; when not asked, JSON on Cloud Run (``K_SERVICE`` set)."""
    if requested is None:
        return "json" if environ.get("K_SERVICE") else "text"
    if requested not in ("text", "json"):
        raise StartupError(f"unknown log format {requested!r}: use text or json")
    return "json" if requested == "json" else "text"


def project_id(environ: Mapping[str, str]) -> str | None:
    """The project traces belong to: ``GOOGLE_CLOUD_PROJECT``, else on Cloud Run the metadata
    server's answer (asked once, at start-up, with a short timeout), else unknown."""
    if project := environ.get("GOOGLE_CLOUD_PROJECT"):
        return project
    if not environ.get("K_SERVICE"):
        return None
    host = environ.get("GCE_METADATA_HOST", "metadata.google.internal")
    request = urllib.request.Request(f"http://{host}{_METADATA_PROJECT}", headers={"Metadata-Flavor": "Google"})
    try:
        with urllib.request.urlopen(request, timeout=_METADATA_TIMEOUT) as response:  # noqa: S310 - http URL built above
            return response.read().decode().strip() or None
    except (OSError, urllib.error.URLError, ValueError):
        return None


def context_from_headers(headers: Mapping[str, str], project: str | None) -> RequestLogContext:
    """The request's id (``X-Request-ID``, else a new one) and its trace when the header holds one."""
    request_id = headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
    value = headers.get(TRACE_HEADER)
    if not value:
        return RequestLogContext(request_id, project=project)
    ids, _, options = value.partition(";")
    trace_id, _, span_id = ids.partition("/")
    trace_id = trace_id.strip()
    if not trace_id or not all(c in "0123456789abcdefABCDEF" for c in trace_id):
        return RequestLogContext(request_id, project=project)
    trace = f"projects/{project}/traces/{trace_id}" if project else trace_id
    return RequestLogContext(request_id, trace, _span_hex(span_id.strip()), options.strip() == "o=1", project)


def adopt_trace(request: web.Request, trace_id: int, span_id: int, sampled: bool) -> None:
    """Names the tracer's trace and span in the request's log lines (with JSON logs on), so a
    line and its trace join whether the trace came in with a header or began here."""
    context: RequestLogContext | None = request.get(REQUEST_CONTEXT)
    if context is None:
        return
    hex_id = f"{trace_id:032x}"
    trace = f"projects/{context.project}/traces/{hex_id}" if context.project else hex_id
    joined = dataclasses.replace(context, trace=trace, span_id=f"{span_id:016x}", sampled=sampled)
    request[REQUEST_CONTEXT] = joined
    _current.set(joined)  # the log middleware resets it when the request ends


def _span_hex(decimal: str) -> str | None:
    """The header's span id is decimal; Cloud Logging wants the same 64 bits as 16 hex digits."""
    if not decimal.isdigit() or int(decimal) >= 1 << 64:
        return None
    return f"{int(decimal):016x}"


@dataclasses.dataclass(frozen=True)
class JsonLogs:
    """JSON logs are on for this server; traces are named in ``project`` when it is known."""

    project: str | None

    def install(self, app: web.Application) -> None:
        """Give every request of ``app`` its log context (before the app is frozen)."""
        app.middlewares.append(trace_middleware(self.project))
        app[JSON_LOGS] = True


def trace_middleware(project: str | None) -> Callable[..., Any]:
    """Sets the request's log context for everything its handler logs (threads included, see
    ``ContextThreadPool``) and leaves it on the request for the access log."""

    @web.middleware
    async def traced(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        context = context_from_headers(request.headers, project)
        request[REQUEST_CONTEXT] = context
        token = _current.set(context)
        try:
            response: web.StreamResponse = await handler(request)
            return response
        finally:
            _current.reset(token)

    return traced


class ContextThreadPool(ThreadPoolExecutor):
    """Runs each call in a copy of the caller's context, so a sync handler's log lines carry
    its request's trace (``run_in_executor`` alone does not carry context into the thread)."""

    #: Callers that need the caller's context in the thread need not copy it themselves.
    copies_context = True

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: Cloud Logging's special fields, the request's trace and id."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"  # Error Reporting reads it here
        elif record.stack_info:
            message = f"{message}\n{record.stack_info}"
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelname, record.levelname),
            "message": message,
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "logger": record.name,
            "logging.googleapis.com/sourceLocation": {
                "file": record.pathname,
                "line": record.lineno,
                "function": record.funcName,
            },
        }
        context: RequestLogContext | None = getattr(record, REQUEST_CONTEXT, None) or _current.get()
        if context is not None:
            entry["request_id"] = context.request_id
            if context.trace is not None:
                entry["logging.googleapis.com/trace"] = context.trace
                entry["logging.googleapis.com/trace_sampled"] = context.sampled
                if context.span_id is not None:
                    entry["logging.googleapis.com/spanId"] = context.span_id
        http_request = getattr(record, "httpRequest", None)
        if http_request is not None:
            entry["httpRequest"] = http_request
        return json.dumps(entry, default=str)


class JsonAccessLogger(AbstractAccessLogger):
    """The access log line with Cloud Logging's ``httpRequest`` and the request's trace (aiohttp
    writes it after the handler's context is gone, so the context comes from the request)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        http_request = {
            "requestMethod": request.method,
            "requestUrl": request.path_qs,
            "status": response.status,
            "responseSize": str(response.body_length),
            "userAgent": request.headers.get("User-Agent", ""),
            "remoteIp": request.remote or "",
            "protocol": f"HTTP/{request.version.major}.{request.version.minor}",
            "latency": f"{time:.6f}s",
        }
        self.logger.info(
            '"%s %s" %s %s %.6fs',
            request.method,
            request.path_qs,
            response.status,
            response.body_length,
            time,
            extra={"httpRequest": http_request, REQUEST_CONTEXT: request.get(REQUEST_CONTEXT)},
        )


def configure(level: int = logging.INFO) -> None:
    """Route every logger's records through one JSON handler on stderr, replacing the root's."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
