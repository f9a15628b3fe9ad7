"""A trace's context in and out of a request: W3C ``traceparent`` and Google's
``X-Cloud-Trace-Context`` both name the trace, so a caller's trace id is the one we record, log
and pass on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from multidict import istr

# istr: a case-insensitive lookup in aiohttp's headers needs no conversion (a plain dict's finds
# them as the strings they are)
TRACEPARENT = istr("traceparent")
CLOUD_TRACE = istr("X-Cloud-Trace-Context")
_HEX = frozenset("0123456789abcdef")


class Incoming(NamedTuple):
    trace_id: int
    parent_span_id: int
    #: The caller's sampling decision (None when its header does not say).
    sampled: bool | None


def _hex(value: str, length: int) -> int:
    """The id a lowercase hex field holds (0 when malformed or all zeros: both invalid)."""
    if len(value) != length or not _HEX.issuperset(value):
        return 0
    return int(value, 16)


def parse_traceparent(value: str) -> Incoming | None:
    """``00-<32 hex trace>-<16 hex parent>-<2 hex flags>``; a later version may add fields."""
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff" or (parts[0] == "00" and len(parts) != 4):
        return None
    trace_id, parent, flags = _hex(parts[1], 32), _hex(parts[2], 16), parts[3]
    if not trace_id or not parent or len(flags) != 2 or not _HEX.issuperset(flags):
        return None
    return Incoming(trace_id, parent, bool(int(flags, 16) & 1))


def parse_cloud_trace(value: str) -> Incoming | None:
    """``TRACE_ID/SPAN_ID;o=OPTIONS``: a 32 hex trace id, a decimal span id, ``o=1`` when sampled."""
    ids, _, options = value.partition(";")
    trace_hex, _, span = ids.partition("/")
    trace_id = _hex(trace_hex.strip().lower(), 32)
    if not trace_id:
        return None
    span = span.strip()
    parent = int(span) if span.isdigit() and int(span) < 1 << 64 else 0
    option = options.strip()
    sampled = None if not option.startswith("o=") else option == "o=1"
    return Incoming(trace_id, parent, sampled)


def incoming(headers: Mapping[str, str]) -> Incoming | None:
    """The caller's trace: ``traceparent`` first (the standard), else Google's header."""
    value = headers.get(TRACEPARENT)
    if value and (found := parse_traceparent(value)) is not None:
        return found
    value = headers.get(CLOUD_TRACE)
    return parse_cloud_trace(value) if value else None


def traceparent(trace_id: int, span_id: int, sampled: bool) -> str:
    """The header an outgoing call carries: it continues this trace under ``span_id``."""
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"
