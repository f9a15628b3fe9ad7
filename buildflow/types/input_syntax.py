"""What a sink's engine takes for a column besides a value of the column's own Python type.

BuildFlow handed rows to BigQuery as JSON (``insert_rows_json``) without a check of its own, so
a row could hold anything BigQuery's JSON input reads: an INT64 as a string of digits, a
TIMESTAMP as an ISO-8601 string or as epoch seconds. Flows rely on it (a CSV row read into a
dataclass keeps its strings). Each sink writer says, once when it is made, whose input syntax
its rows follow; the checks of ``buildflow.types.schema`` call the fallback found here only for
a value that is not already of the column's type, so well-typed rows cost nothing more.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import enum
import math
import re
import zoneinfo
from collections.abc import Callable
from typing import Any

from buildflow.types.fields import INT_MAX, INT_MIN, Kind

__all__ = ["Fallback", "InputSyntax", "fallback"]

#: Converts a value that is not of its column's type, or raises ``ValueError`` saying what the
#: engine takes instead (the caller adds the column and the value).
Fallback = Callable[[Any], Any]


class InputSyntax(enum.Enum):
    #: Values of the column's Python type only (a row checked where no sink reads it).
    PYTHON = "python"
    #: What a reader of JSON text takes for the column, by the same rules as BigQuery's JSON
    #: input: files, buckets, topics and DuckDB tables, which BuildFlow wrote unchecked (an ISO
    #: string in a ``datetime`` field, digits in an ``int`` one), so rows it wrote are written.
    JSON = "json"
    #: BigQuery's JSON input (``tabledata.insertAll``, JSON load jobs), converted here so that
    #: BigQuery's local stand-in stores, and refuses, what BigQuery would.
    BIGQUERY = "bigquery"
    #: PostgreSQL's text input: a string goes to the server as it is (rows travel as COPY
    #: text), and PostgreSQL reads it with its own input functions or refuses it.
    POSTGRES = "postgres"


def fallback(syntax: InputSyntax, kind: Kind) -> Fallback | None:
    """How a value not of the column's type is read under ``syntax``; None: it is refused."""
    if syntax is InputSyntax.BIGQUERY or syntax is InputSyntax.JSON:
        return _BIGQUERY.get(kind)
    if syntax is InputSyntax.POSTGRES and kind in _POSTGRES_TEXT:
        return _postgres_text(_POSTGRES_TEXT[kind])
    return None


# -- BigQuery ------------------------------------------------------------------------------------
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = {
    "nan": math.nan,
    "inf": math.inf,
    "+inf": math.inf,
    "-inf": -math.inf,
    "infinity": math.inf,
    "+infinity": math.inf,
    "-infinity": -math.inf,
}
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
_DATE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
# BigQuery's canonical timestamp: YYYY-[M]M-[D]D[( |T)[H]H:[M]M:[S]S[.F]][time zone], the date
# also with slashes; the zone is Z, an offset (+|-)H[H][:M[M]], or a name such as UTC.
_TIMESTAMP = re.compile(
    r"([0-9]{4})([-/])([0-9]{1,2})\2([0-9]{1,2})"
    r"(?:[T ]([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:\.([0-9]{1,6}))?)?"
    r"(?: ?(Z)| ?([+-])([0-9]{1,2})(?::([0-9]{1,2}))?| ([A-Za-z][A-Za-z0-9_+/-]*))?"
)


def _int64(v: Any) -> int:
    integral = isinstance(v, float) and v.is_integer()
    if not (integral or (isinstance(v, str) and len(v) <= 20 and _INTEGER.fullmatch(v))):
        raise ValueError("BigQuery's INT64 takes an integer or a string of one")
    value = int(v)
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError("BigQuery's INT64 holds 64-bit integers")
    return value


def _float64(v: Any) -> float:
    if isinstance(v, str):
        if _DECIMAL.fullmatch(v):
            return float(v)
        special = _NON_FINITE.get(v.lower())
        if special is not None:
            return special
    raise ValueError('BigQuery\'s FLOAT64 takes a number, a string of one, "NaN", "Infinity" or "-Infinity"')


def _bool(v: Any) -> bool:
    found = _BOOLEANS.get(v.lower()) if isinstance(v, str) else None
    if found is None:
        raise ValueError('BigQuery\'s BOOL takes true, false, or the strings "true", "false", "1", "0"')
    return found


def _timestamp(v: Any) -> datetime.datetime:
    problem = "BigQuery's TIMESTAMP takes epoch seconds or a string such as 2023-08-17 16:30:24.5-04:00"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        try:
            return datetime.datetime.fromtimestamp(v, datetime.UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(problem) from None
    match = _TIMESTAMP.fullmatch(v) if isinstance(v, str) else None
    if match is None:
        raise ValueError(problem)
    year, sep, month, day, hour, minute, second, fraction, z, sign, off_h, off_m, name = match.groups()
    try:
        if sep == "-" and name is None:  # most strings are ISO 8601 too: Python's parser is quicker
            with contextlib.suppress(ValueError):
                parsed = datetime.datetime.fromisoformat(v)
                return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.UTC)
        if z or not (sign or name):
            zone: datetime.tzinfo = datetime.UTC
        elif sign:
            offset = datetime.timedelta(hours=int(off_h), minutes=int(off_m or 0))
            zone = datetime.timezone(-offset if sign == "-" else offset)
        else:
            zone = zoneinfo.ZoneInfo(name)
        return datetime.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
            int((fraction or "0").ljust(6, "0")), zone,
        )  # fmt: skip
    except (ValueError, LookupError, OSError):  # a day, hour or offset out of range; an unknown zone
        raise ValueError(problem) from None


def _date(v: Any) -> datetime.date:
    match = _DATE.fullmatch(v) if isinstance(v, str) else None
    try:
        if match is not None:
            return datetime.date(*map(int, match.groups()))
    except ValueError:
        pass
    raise ValueError("BigQuery's DATE takes a string such as 2023-08-17")


def _bytes(v: Any) -> bytes:
    if isinstance(v, str):
        try:
            return base64.b64decode(v, validate=True)
        except ValueError:
            pass
    raise ValueError("BigQuery's BYTES takes bytes or a base64 string")


_BIGQUERY: dict[Kind, Fallback] = {
    Kind.INTEGER: _int64,
    Kind.FLOAT: _float64,
    Kind.BOOLEAN: _bool,
    Kind.TIMESTAMP: _timestamp,
    Kind.DATE: _date,
    Kind.BYTES: _bytes,
}


# -- PostgreSQL ----------------------------------------------------------------------------------
#: PostgreSQL's type of each kind of column (the tables bfctl makes use them too).
POSTGRES_TYPES = {
    Kind.STRING: "text",
    Kind.INTEGER: "bigint",
    Kind.FLOAT: "double precision",
    Kind.BOOLEAN: "boolean",
    Kind.TIMESTAMP: "timestamptz",
    Kind.DATE: "date",
    Kind.BYTES: "bytea",
    Kind.JSON: "jsonb",
}
#: The columns whose text PostgreSQL reads itself, by the type it reads it as.
_POSTGRES_TEXT = {kind: name for kind, name in POSTGRES_TYPES.items() if kind not in (Kind.STRING, Kind.JSON)}


def _postgres_text(type_name: str) -> Fallback:
    def as_text(v: Any) -> Any:
        if isinstance(v, str):
            return v
        raise ValueError(f"PostgreSQL reads a {type_name} from text, not from other types")

    return as_text
