"""What an error raised while processing means: one table for endpoints (the status and detail
a client gets) and consumers (the reason a failed message is logged with)."""

from __future__ import annotations

import dataclasses
import traceback
from pathlib import Path

from aiohttp import web

from bfctl.runtime.batching import QueueFull, SinkUnavailable
from bfctl.runtime.bodies import client_fault
from bfctl.runtime.conversion import ConversionError
from bfctl.runtime.errors import ClientError, one_line
from bfctl.runtime.responses import (
    http_error,
    is_unavailable,
    json_response,
    server_error,
    starlette_http_error,
    unavailable,
)
from bfctl.runtime.sinks.base import RowsRejected
from buildflow.exceptions import HTTPException
from buildflow.types.schema import RowConversionError


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: int
    detail: str  # for the client; ``{}`` is the error
    reason: str  # why a message failed; ``{}`` is the error
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


_SINK_BUSY = Outcome(
    503, "The sink cannot take rows right now; retry later", "its rows were not written: {}", {"Retry-After": "1"}
)

#: The errors of the input and of the rows for a sink, from a collector, a consumer or a
#: ``SinkDependencyBuilder`` dependency; the first entry the error is an instance of applies.
OUTCOMES: tuple[tuple[type[BaseException], Outcome], ...] = (
    (ConversionError, Outcome(422, "the input did not convert: {}", "its input did not convert: {}")),
    (RowConversionError, Outcome(422, "row does not fit the sink: {}", "a returned row does not fit the sink: {}")),
    (RowsRejected, Outcome(422, "rows refused by the sink: {}", "the sink refused its rows: {}")),
    (SinkUnavailable, _SINK_BUSY),
    (QueueFull, _SINK_BUSY),
)


def outcome_of(error: BaseException) -> Outcome | None:
    for kind, outcome in OUTCOMES:
        if isinstance(error, kind):
            return outcome
    return None


def answer(raw: web.Request, name: str, error: Exception) -> web.StreamResponse:
    """The response to an endpoint or collector ``name`` that raised ``error``: what the client
    did wrong is a 4xx, what the service cannot do now a 503, anything else a logged 500."""
    if isinstance(error, HTTPException):
        return json_response({"detail": error.detail}, error.status_code, error.headers)
    if isinstance(error, ClientError):
        return json_response(error.body, error.status, error.headers)
    if isinstance(error, web.HTTPException):  # aiohttp's own, e.g. 413 from reading the body
        return http_error(error)
    if (fault := client_fault(raw, error)) is not None:
        return json_response(fault.body, fault.status)
    outcome = outcome_of(error)
    if outcome is not None:
        return json_response({"detail": outcome.detail.format(error)}, outcome.status, outcome.headers)
    if is_unavailable(error):
        return unavailable(raw, name, error)
    return starlette_http_error(error) or server_error(raw, name, error)


def reason(error: BaseException) -> str:
    """Why a message failed, on one line, without its content."""
    outcome = outcome_of(error)
    if outcome is not None:
        return outcome.reason.format(error)
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"the handler raised {one_line(error)}{where}"
