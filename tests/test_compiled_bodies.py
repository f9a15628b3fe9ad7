"""A JSON body read straight into the handler's dataclasses (msgspec, in C) gives what the
converters give, and every body it does not take is read by the converters, so answers
(values, 400s, 422s) stay the same."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Annotated, Any, Optional

import orjson
import pytest

from bfctl.runtime.validation import REFUSED, Invalid, compile_decoder, compile_type
from bfctl.testing import TestClient
from buildflow import Flow


@dataclasses.dataclass
class Event:
    user: str
    n: int
    score: float = 0.5
    ok: Optional[bool] = None  # noqa: UP045 - as BuildFlow's samples annotate
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Plain:
    user: str
    n: int
    score: float = 0.5
    ok: Optional[bool] = None  # noqa: UP045
    big: int | None = None


BODIES = [
    b'{"user": "a", "n": 1}',
    b'{"user": "a", "n": 1, "score": 2, "ok": true, "big": 9223372036854775807}',
    b'{"user": "a", "n": 9223372036854775808}',
    b'{"user": "a", "n": 18446744073709551615}',
    b'{"user": "a", "n": 1, "big": 18446744073709551615}',
    b'{"user": "a", "n": -9223372036854775809}',
    b'{"user": "a", "n": 1, "score": 123456789012345678901234567890, "big": -18446744073709551616}',
    b'{"user": "a", "n": 1, "score": -0.1e-400}',
    b'{"user": "a", "n": 1.0}',
    b'{"user": "a", "n": "7"}',
    b'{"user": "a", "n": true}',
    b'{"user": "a", "n": 1, "ok": 1}',
    b'{"user": 5, "n": 1}',
    b'{"n": 1}',
    b'{"user": "a", "user": "b", "n": 2, "extra": [1]}',
    b'{"user": "\\u00e9\\ud83d\\ude00", "n": 1, "score": 1e308}',
    b'{"user": "a", "n": 1, "score": 1e400}',
    b'{"user": "\\ud800", "n": 1}',
    b'{"user": "a", "n": 1} x',
    b'\xef\xbb\xbf{"user": "a", "n": 1}',
    b'{"user": "a\xff", "n": 1}',
    b"[]",
    b"null",
    b"",
]


def _converters(tp: Any, body: bytes) -> Any:
    """What the converters make of ``body``: a value, or the error they answer with."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "malformed"
    try:
        return compile_type(tp)(data)
    except Invalid as e:
        return e.errors


@pytest.mark.parametrize("tp", [Plain, list[Plain]])
@pytest.mark.parametrize("body", BODIES)
def test_what_the_compiled_decoder_takes_is_what_the_converters_make(tp: Any, body: bytes) -> None:
    decode = compile_decoder(tp)
    assert decode is not None
    if tp is not Plain:
        body = b"[" + body + b"]" if body else body
    decoded = decode(body)
    if decoded is not REFUSED:
        assert decoded == _converters(tp, body)
        assert all(type(x) is Plain for x in (decoded if isinstance(decoded, list) else [decoded]))


def test_integers_beyond_64_bits_and_fields_it_cannot_read_are_left_to_the_converters() -> None:
    decode = compile_decoder(list[Plain])
    assert decode is not None
    assert decode(b'[{"user": "a", "n": 9223372036854775807}]') == [Plain("a", 9223372036854775807)]
    assert decode(b'[{"user": "a", "n": 1}, {"user": "b", "n": 9223372036854775808}]') is REFUSED
    assert decode(b'[{"user": "a", "n": 1, "big": 18446744073709551615}]') is REFUSED
    assert decode(b'[{"user": "a", "n": -9223372036854775809}]') is REFUSED
    assert decode(b'[{"user": "a", "n": "1"}]') is REFUSED


@dataclasses.dataclass
class Stamped:
    at: datetime.datetime


@dataclasses.dataclass
class Nested:
    inner: Plain


@dataclasses.dataclass
class Marked:
    n: Annotated[int, "meta"]


@pytest.mark.parametrize(
    "tp",
    [Event, Stamped, Nested, Marked, Optional[Plain], list[Optional[Plain]], tuple[Plain, ...], dict, int],  # noqa: UP045
)
def test_only_dataclasses_of_scalars_and_lists_of_them_are_decoded_in_c(tp: Any) -> None:
    assert compile_decoder(tp) is None


def test_a_collector_answers_the_converters_422_for_what_the_decoder_refuses() -> None:
    app = Flow()

    @app.collector("/events", method="POST", sink=None)
    def events(batch: list[Plain]) -> list[Plain]:
        return batch

    with TestClient(app) as client:
        ok = client.post("/events", json=[{"user": "a", "n": 1}, {"user": "b", "n": 2, "ok": True}])
        too_big = client.post("/events", json=[{"user": "a", "n": 1}, {"user": "b", "n": 2**63}])
        as_text = client.post("/events", json=[{"user": "a", "n": "3"}])
        missing = client.post("/events", json=[{"n": 1}])
        malformed = client.post("/events", content=b"[{", headers={"Content-Type": "application/json"})
    assert ok.status_code == 200, ok.text
    assert as_text.status_code == 200, as_text.text
    assert too_big.status_code == 422
    assert too_big.json()["detail"] == [
        {"loc": ["body", 1, "n"], "msg": "Input should be a 64-bit integer", "type": "int_range"}
    ]
    assert missing.status_code == 422
    assert missing.json()["detail"] == [{"loc": ["body", 0, "user"], "msg": "Field required", "type": "missing"}]
    assert malformed.status_code == 400 and malformed.json()["detail"].startswith("Malformed JSON body")
