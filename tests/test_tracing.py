"""Traces of a real ``bfctl serve``: requests over loopback, the spans exported over OTLP/HTTP to
a receiver in this test that decodes each body, and checked by name, parent and attribute."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import serving, wait_until, write

FLOW = """
import dataclasses
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import sqlalchemy
from opentelemetry import trace

from buildflow import Flow
from buildflow.dependencies import Scope, dependency
from buildflow.io.local import File
from buildflow.pipedream import Dispatcher
from buildflow.requests import Request
from buildflow.types.portable import FileFormat

app = Flow()
tracer = trace.get_tracer("shop")
engine = sqlalchemy.create_engine("sqlite://")


@dependency(Scope.PROCESS)
class Prices:
    def __init__(self) -> None:
        self.rate = 2


@dependency(Scope.PROCESS)
class Basket:
    async def __init__(self, prices: Prices) -> None:
        self.total = 5 * prices.rate


@dataclasses.dataclass
class Click:
    page: str


@app.collector("/clicks", method="POST", sink=File("out/clicks.json", FileFormat.JSON))
def clicks(click: Click) -> Click:
    return click


service = app.service()


@service.endpoint("/total", method="GET")
async def total(basket: Basket) -> dict:
    trace.get_current_span().set_attribute("shop.customer", "ada")  # the request's span
    with tracer.start_as_current_span("price lookup") as span:
        span.set_attribute("items", 5)
        span.add_event("priced", {"currency": "EUR"})
        with tracer.start_as_current_span("discount") as discount:
            try:
                raise KeyError("no coupon")
            except KeyError as e:
                discount.record_exception(e)
    return {"total": basket.total}


@service.endpoint("/fail", method="GET")
def fail(prices: Prices) -> dict:
    raise ValueError("no price today")


@service.endpoint("/hi", method="GET")
def hi() -> str:
    trace.get_current_span().set_attribute("shop.greeting", True)  # in the pool's thread too
    return "hi"


@service.endpoint("/relay", method="GET")
async def relay(request: Request) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(str(request.base_url) + "hi") as response:
            return await response.json()


@service.endpoint("/count", method="GET")
def count() -> int:
    with engine.connect() as connection:
        return connection.execute(sqlalchemy.text("SELECT 41 + 1")).scalar_one()


stockroom = Dispatcher(async_pool=ThreadPoolExecutor(2))


@stockroom.add
def shelf() -> int:
    with tracer.start_as_current_span("shelf count"):
        return 3


app.use_dispatcher(stockroom)


@service.endpoint("/stock", method="GET")
async def stock(shelf) -> int:
    return shelf
"""


class Receiver:
    """An OTLP/HTTP receiver on loopback: each POST's JSON decoded, its spans kept by name."""

    def __init__(self, answer: int = 200) -> None:
        self.answer = answer
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.headers.append(dict(self.headers))
                receiver.bodies.append(json.loads(body))
                self.send_response(receiver.answer)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}" if receiver.answer == 200 else b'{"error": {"message": "refused"}}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def spans(self) -> list[dict[str, Any]]:
        return [
            span
            for body in self.bodies
            for resource in body["resourceSpans"]
            for scope in resource["scopeSpans"]
            for span in scope["spans"]
        ]

    def trace_of(self, root_name: str) -> list[dict[str, Any]]:
        roots = [s for s in self.spans() if s["name"] == root_name]
        assert roots, f"no span named {root_name!r} in {[s['name'] for s in self.spans()]}"
        return [s for s in self.spans() if s["traceId"] == roots[-1]["traceId"]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()


def _env(bfctl_env: dict[str, str], receiver: Receiver) -> dict[str, str]:
    return {**bfctl_env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "20"}


def _by_name(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in spans}


def _attributes(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}


ARGS = ["flow.py", "--apply", "--port", "0", "--workers", "1", "--no-access-log"]


def test_request_spans_nest_dependencies_handler_and_user_spans(
    tmp_path: Path, bfctl_env: dict[str, str], receiver: Receiver
) -> None:
    write(tmp_path / "flow.py", FLOW)
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with serving(ARGS, tmp_path, _env(bfctl_env, receiver)) as server:
        assert server.get("/total") == (200, '{"total":10}')
        kept = json.loads(server.get("/_bf/api/traces")[1])
        opened = json.loads(server.get(f"/_bf/api/traces/{kept[0]['trace_id']}")[1])
        shown = {span["name"]: span for span in opened["spans"]}
        assert [(e["name"], e["attributes"]) for e in shown["price lookup"]["events"]] == [
            ("priced", {"currency": "EUR"})
        ]
        assert shown["discount"]["events"][0]["attributes"]["exception.type"] == "KeyError"
        assert server.call("GET", "/fail")[0] == 500
        assert server.call("POST", "/clicks", b'{"page": "/home"}')[0] == 200
        import urllib.request

        request = urllib.request.Request(
            server.url + "/hi", headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        assert server.get("/relay") == (200, '"hi"')
        assert server.get("/count") == (200, "42")
        assert server.get("/stock") == (200, "3")
        expected = {"GET /total", "GET /fail", "collector POST /clicks", "GET /hi", "GET /relay", "GET /count"}
        expected.add("GET /stock")
        wait_until(lambda: expected <= _names(receiver))
        assert server.stop() == 0

    spans = _by_name(receiver.trace_of("GET /total"))
    root = spans["GET /total"]
    assert "parentSpanId" not in root and root["kind"] == 2
    assert _attributes(root)["http.response.status_code"] == "200"
    assert _attributes(root)["shop.customer"] == "ada"  # set through the API's current span
    prices, basket = spans["dependency Prices"], spans["dependency Basket"]
    handler = spans["handler total"]
    # Prices is sync, alone in its trip to the pool: one span that covers the trip
    assert "thread pool" not in spans and prices["parentSpanId"] == root["spanId"]
    assert _attributes(prices) == {
        "bf.dependency": "Prices",
        "bf.scope": "PROCESS",
        "bf.async": False,
        "bf.blocking": False,
        "bf.pool_trip": True,
    }
    assert basket["parentSpanId"] == root["spanId"] and _attributes(basket)["bf.async"] is True
    assert handler["parentSpanId"] == root["spanId"]
    lookup = spans["price lookup"]
    assert lookup["parentSpanId"] == handler["spanId"] and _attributes(lookup) == {"items": "5"}
    assert spans["discount"]["parentSpanId"] == lookup["spanId"]
    (priced,) = lookup["events"]
    assert priced["name"] == "priced" and _attributes(priced) == {"currency": "EUR"}
    assert int(lookup["startTimeUnixNano"]) <= int(priced["timeUnixNano"]) <= int(lookup["endTimeUnixNano"])
    (raised,) = spans["discount"]["events"]
    recorded = _attributes(raised)
    assert raised["name"] == "exception" and spans["discount"]["status"]["code"] == 2
    assert recorded["exception.type"] == "KeyError" and recorded["exception.message"] == "'no coupon'"
    assert 'raise KeyError("no coupon")' in recorded["exception.stacktrace"]
    assert int(prices["endTimeUnixNano"]) <= int(basket["endTimeUnixNano"]) <= int(handler["startTimeUnixNano"])

    failed = _by_name(receiver.trace_of("GET /fail"))
    assert failed["handler fail"]["status"] == {"code": 2, "message": "ValueError: no price today"}
    assert failed["GET /fail"]["status"]["code"] == 2 and "status" not in failed["dependency Prices"]

    collected = _by_name(receiver.trace_of("collector POST /clicks"))
    write_span = collected["sink write"]
    assert write_span["parentSpanId"] == collected["collector POST /clicks"]["spanId"]
    attributes = _attributes(write_span)
    assert attributes["bf.rows"] == "1" and attributes["bf.commit.requests"] == "1"
    assert attributes["bf.sink"].startswith("File ") and attributes["bf.sink.writer"]

    adopted = [s for s in receiver.spans() if s["traceId"] == caller_trace]
    assert [s["name"] for s in adopted] == ["GET /hi", "handler hi"]  # nothing to build: one span, its pool trip in it
    assert adopted[0]["parentSpanId"] == caller_span and _attributes(adopted[0])["shop.greeting"] is True

    # the outgoing call is a span of the relay's trace, and /hi's trace continues under it
    relayed = receiver.trace_of("GET /relay")
    client = next(s for s in relayed if s["name"] == "GET 127.0.0.1")
    assert client["parentSpanId"] == _by_name(relayed)["handler relay"]["spanId"]
    assert _attributes(client)["http.response.status_code"] == "200"
    served = next(s for s in relayed if s["name"] == "GET /hi")
    assert served["parentSpanId"] == client["spanId"]

    query = _by_name(receiver.trace_of("GET /count"))
    statement = query["SELECT sqlite"]
    assert statement["parentSpanId"] == query["handler count"]["spanId"]
    assert _attributes(statement)["db.query.text"] == "SELECT 41 + 1"

    # a dispatcher function in a pool of its own: its span covers the trip, the flow's span inside
    # it (the request's context went with it into that pool's thread); then the handler's
    stocked = _by_name(receiver.trace_of("GET /stock"))
    function = stocked["dispatcher shelf"]
    assert function["parentSpanId"] == stocked["GET /stock"]["spanId"]
    assert _attributes(function)["bf.pool_trip"] is True
    assert stocked["shelf count"]["parentSpanId"] == function["spanId"]
    assert stocked["handler stock"]["parentSpanId"] == stocked["GET /stock"]["spanId"]


def _names(receiver: Receiver) -> set[str]:
    return {s["name"] for s in receiver.spans()}


CONSUMER_FLOW = """
import dataclasses
from concurrent.futures import ThreadPoolExecutor

from buildflow import Flow
from buildflow.dependencies import Scope, dependency
from buildflow.io.local import File, Pulse
from buildflow.types.portable import FileFormat

app = Flow()


@dependency(Scope.PROCESS)
class Doubler:
    factor = 2


@dataclasses.dataclass
class Doubled:
    n: int


@app.consumer(Pulse([{"n": 1}, {"n": -1}], 0.05), File("out/doubled.json", FileFormat.JSON))
def handle_row(item: dict, doubler: Doubler) -> Doubled:
    if item["n"] < 0:
        raise ValueError("negative")
    return Doubled(item["n"] * doubler.factor)


@app.consumer(Pulse([{"n": 3}], 0.05), File("out/plain.json", FileFormat.JSON))
def handle_plain(item: dict) -> Doubled:
    return Doubled(item["n"])
"""


def test_each_consumer_message_is_a_trace_ending_with_its_ack(
    tmp_path: Path, bfctl_env: dict[str, str], receiver: Receiver
) -> None:
    write(tmp_path / "flow.py", CONSUMER_FLOW)
    with serving(ARGS, tmp_path, _env(bfctl_env, receiver)) as server:
        wait_until(lambda: {"ack", "nack", "consumer handle_plain"} <= _names(receiver))
        assert server.stop() == 0

    traces: dict[str, list[dict[str, Any]]] = {}
    for span in receiver.spans():
        traces.setdefault(span["traceId"], []).append(span)
    settled = {
        next(s["name"] for s in spans if s["name"] in ("ack", "nack")): _by_name(spans)
        for spans in traces.values()
        if {"ack", "nack"} & {s["name"] for s in spans} and "consumer handle_row" in {s["name"] for s in spans}
    }
    handled, failed = settled["ack"], settled["nack"]
    root = handled["consumer handle_row"]
    assert "parentSpanId" not in root and "status" not in root
    for name in ("dependency Doubler", "thread pool", "sink write", "ack"):
        assert name in handled, name
    assert handled["sink write"]["parentSpanId"] == root["spanId"]
    assert _attributes(handled["sink write"])["bf.rows"] == "1"
    assert handled["ack"]["parentSpanId"] == root["spanId"]
    assert int(handled["ack"]["endTimeUnixNano"]) <= int(root["endTimeUnixNano"])

    assert failed["handler handle_row"]["status"] == {"code": 2, "message": "ValueError: negative"}
    assert failed["consumer handle_row"]["status"]["code"] == 2 and "sink write" not in failed

    # a handler with nothing to build per message: the batch takes one pool trip, each call a span
    plain = _by_name(receiver.trace_of("consumer handle_plain"))
    assert plain["handler handle_plain"]["parentSpanId"] == plain["consumer handle_plain"]["spanId"]
    assert plain["sink write"]["parentSpanId"] == plain["consumer handle_plain"]["spanId"]
