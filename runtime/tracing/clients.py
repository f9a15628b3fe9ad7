"""Spans for what a handler calls: outgoing aiohttp requests (which carry ``traceparent``) and
SQLAlchemy statements.

OpenTelemetry's instrumentations for both pin an API and semantic-conventions release other than
the one Pulumi's SDK pins (bfctl's gcp extra), so the two cannot be installed together; these are
the same hooks through each library's public extension points: aiohttp's ``TraceConfig``
(added to every session a traced worker makes) and SQLAlchemy's engine events.
"""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace
from typing import Any

import aiohttp

from bfctl.runtime.tracing.propagation import TRACEPARENT, traceparent
from bfctl.runtime.tracing.spans import Span, current

_installed: set[str] = set()


def install() -> None:
    """Hook aiohttp's sessions, and SQLAlchemy's engines when the flow uses SQLAlchemy (once per process)."""
    if "aiohttp" not in _installed:
        _installed.add("aiohttp")
        _hook_aiohttp()
    if "sqlalchemy" not in _installed and "sqlalchemy" in sys.modules:
        _installed.add("sqlalchemy")
        _hook_sqlalchemy()


# -- aiohttp ------------------------------------------------------------------------------------


async def _request_start(_session: Any, context: SimpleNamespace, params: aiohttp.TraceRequestStartParams) -> None:
    parent = current.get()
    if parent is None:  # outside a traced request (the exporter's own calls among them)
        context.span = None
        return
    url = params.url
    span = Span(
        parent.trace,
        f"{params.method} {url.host}",
        parent.span_id,
        {"http.request.method": params.method, "url.full": str(url.with_query(None)), "span.kind": "client"},
    )
    context.span = span
    params.headers[TRACEPARENT] = traceparent(parent.trace.trace_id, span.span_id, parent.trace.sampled)


async def _request_end(_session: Any, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
    span: Span | None = getattr(context, "span", None)
    if span is not None:
        span.end = time.perf_counter_ns()
        span.set("http.response.status_code", params.response.status)
        if params.response.status >= 500:
            span.error = f"HTTP {params.response.status}"


async def _request_failed(_session: Any, context: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams) -> None:
    span: Span | None = getattr(context, "span", None)
    if span is not None:
        span.end = time.perf_counter_ns()
        span.fail(params.exception)


def _hook_aiohttp() -> None:
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_request_start)
    config.on_request_end.append(_request_end)
    config.on_request_exception.append(_request_failed)
    config.freeze()
    init = aiohttp.ClientSession.__init__

    def traced_init(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        kwargs["trace_configs"] = [*(kwargs.get("trace_configs") or ()), config]
        init(self, *args, **kwargs)

    aiohttp.ClientSession.__init__ = traced_init  # type: ignore[method-assign]


# -- SQLAlchemy ---------------------------------------------------------------------------------

#: Where a statement's span waits for its end: an attribute of SQLAlchemy's per-execution context.
_SPAN = "_bf_span"


def _hook_sqlalchemy() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def before(conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        parent = current.get()
        if parent is None or context is None:
            return
        words = statement.split(None, 1)
        engine = conn.engine
        attributes = {"db.system": engine.dialect.name, "db.query.text": statement[:2000]}
        name = f"{words[0].upper() if words else 'SQL'} {engine.url.database or engine.dialect.name}"
        setattr(context, _SPAN, Span(parent.trace, name, parent.span_id, attributes))

    def after(_conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
        span = getattr(context, _SPAN, None)
        if span is not None:
            span.end = time.perf_counter_ns()

    def failed(exception_context: Any) -> None:
        span = getattr(exception_context.execution_context, _SPAN, None)
        if span is not None:
            span.end = time.perf_counter_ns()
            span.fail(exception_context.original_exception)

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    event.listen(Engine, "handle_error", failed)
