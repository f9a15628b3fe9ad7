"""Where traces go and what is kept: a collector that hangs or refuses (requests unharmed, the
losses counted in /_bf/metrics), Cloud Trace's OTLP endpoint as a loopback stand-in that answers
as Google does (a token from the metadata server, 403 and 400 bodies), sampling by the caller's
flag, and the dashboard's store filled by a real server."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support import HELLO_FLOW, on_loopback, serving, wait_until, write

from bfctl.runtime.app import FlowApp
from bfctl.runtime.tracing.store import TRACE_STORE, TraceStore
from buildflow import Flow
from buildflow.dependencies import Scope, dependency
from buildflow.pipedream import Dispatcher

ARGS = ["main.py", "--port", "0", "--workers", "1", "--no-access-log", "--no-dashboard"]
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


class Google(BaseHTTPRequestHandler):
    """The metadata server's token and the Telemetry API's ``/v1/traces``, answering in turn
    what ``answers`` holds (then 200)."""

    answers: list[tuple[int, dict[str, Any]]]
    received: list[tuple[dict[str, str], dict[str, Any]]]
    hang: threading.Event | None = None

    def do_GET(self) -> None:
        assert self.path == "/computeMetadata/v1/instance/service-accounts/default/token"
        assert self.headers["Metadata-Flavor"] == "Google"
        self._answer(200, {"access_token": "ya29.token", "expires_in": 3599, "token_type": "Bearer"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.hang is not None:
            self.hang.wait(30)
            return
        self.received.append((dict(self.headers), body))
        status, answer = self.answers.pop(0) if self.answers else (200, {})
        self._answer(status, answer)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def google() -> Iterator[tuple[str, type[Google]]]:
    handler = type("Stand-in", (Google,), {"answers": [], "received": [], "hang": None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", handler
    if handler.hang is not None:
        handler.hang.set()
    server.shutdown()


def _spans(received: list[tuple[dict[str, str], dict[str, Any]]]) -> list[dict[str, Any]]:
    return [
        span
        for _headers, body in received
        for resource in body["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]


def _metric(server: Any, outcome: str) -> float:
    text = server.get("/_bf/metrics")[1]
    for line in text.splitlines():
        if line.startswith("buildflow_trace_spans_total{") and f'outcome="{outcome}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_cloud_trace_gets_a_token_and_google_refusals_are_logged_not_fatal(
    tmp_path: Path, bfctl_env: dict[str, str], google: tuple[str, type[Google]]
) -> None:
    host, stand_in = google
    stand_in.answers = [
        (
            403,
            {
                "error": {
                    "code": 403,
                    "message": "Permission 'telemetry.traces.write' denied",
                    "status": "PERMISSION_DENIED",
                }
            },
        ),
        (400, {"error": {"code": 400, "message": "Invalid span: name is empty", "status": "INVALID_ARGUMENT"}}),
    ]
    write(tmp_path / "main.py", HELLO_FLOW)
    env = {
        **bfctl_env,
        "BFCTL_TRACES": "cloudtrace",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://{host}/v1/traces",
        "GCE_METADATA_HOST": host,
        "GOOGLE_CLOUD_PROJECT": "shop-prod",
        "OTEL_BSP_SCHEDULE_DELAY": "20",
    }
    with serving(ARGS, tmp_path, env) as server:
        for sent in range(1, 4):  # one send refused, one rejected, one taken: a request each
            assert server.get("/hello") == (200, '"hello"')
            wait_until(lambda sent=sent: len(stand_in.received) == sent)
        wait_until(lambda: _metric(server, "exported") == 2)
        assert _metric(server, "failed") == 4  # the first two requests' root and handler spans
        assert server.stop() == 0

    headers, body = stand_in.received[-1]
    assert headers["Authorization"] == "Bearer ya29.token"
    resource = {a["key"]: a["value"]["stringValue"] for a in body["resourceSpans"][0]["resource"]["attributes"]}
    assert resource["gcp.project_id"] == "shop-prod"
    assert {s["name"] for s in _spans(stand_in.received[-1:])} == {"GET /hello", "handler hello"}
    assert "Permission 'telemetry.traces.write' denied" in server.output
    assert "Invalid span: name is empty" in server.output
    assert "ya29.token" not in server.output


def test_a_hanging_collector_costs_requests_nothing_and_drops_are_counted(
    tmp_path: Path, bfctl_env: dict[str, str], google: tuple[str, type[Google]]
) -> None:
    host, stand_in = google
    stand_in.hang = threading.Event()
    write(tmp_path / "main.py", HELLO_FLOW)
    env = {
        **bfctl_env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{host}",
        "OTEL_BSP_SCHEDULE_DELAY": "10",
        "OTEL_BSP_MAX_QUEUE_SIZE": "5",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "300",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cr3t-value",
    }
    with serving(ARGS, tmp_path, env) as server:
        for _ in range(40):
            assert server.get("/hello") == (200, '"hello"')
        wait_until(lambda: _metric(server, "dropped") > 0 and _metric(server, "failed") > 0)
        assert server.stop() == 0
    assert "TimeoutError" in server.output  # said once, as a warning
    assert "s3cr3t-value" not in server.output


SAMPLED_FLOW = """
from buildflow import Flow

app = Flow()
service = app.service()


@service.endpoint("/hello", method="GET")
async def hello() -> str:
    return "hello"
"""


def test_sampling_follows_the_callers_flag_else_the_ratio(
    tmp_path: Path, bfctl_env: dict[str, str], google: tuple[str, type[Google]]
) -> None:
    host, stand_in = google
    write(tmp_path / "main.py", SAMPLED_FLOW)
    env = {
        **bfctl_env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{host}",
        "OTEL_BSP_SCHEDULE_DELAY": "10",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0",
    }
    calls = {
        "sampled": {"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01"},
        "not sampled": {"traceparent": f"00-{'1' * 32}-b7ad6b7169203331-00"},
        "Cloud Run, sampled": {"X-Cloud-Trace-Context": f"{'2' * 32}/1234;o=1"},
        "no header (ratio 0)": {},
        "malformed": {"traceparent": "00-zz-b7ad6b7169203331-01"},
    }
    with serving(ARGS, tmp_path, env) as server:
        for headers in calls.values():
            with urllib.request.urlopen(urllib.request.Request(server.url + "/hello", headers=headers)) as r:
                assert r.status == 200
        wait_until(lambda: len({s["traceId"] for s in _spans(stand_in.received)}) >= 2)
        assert server.get("/hello")[0] == 200  # a last request, so a late export would show below
        assert server.stop() == 0

    roots = {s["traceId"]: s for s in _spans(stand_in.received) if "parentSpanId" not in s or s["kind"] == 2}
    assert set(roots) == {TRACE_ID, "2" * 32}
    assert roots[TRACE_ID]["parentSpanId"] == "b7ad6b7169203331"
    assert roots["2" * 32]["parentSpanId"] == f"{1234:016x}"


def test_a_bad_sampler_or_protocol_stops_start_up_with_a_clear_message(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    write(tmp_path / "main.py", HELLO_FLOW)
    for variable, value, said in [
        ("OTEL_TRACES_SAMPLER", "sometimes", "OTEL_TRACES_SAMPLER='sometimes': use one of always_on"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "bfctl sends OTLP over HTTP as JSON (http/json)"),
    ]:
        env = {**bfctl_env, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", variable: value}
        from support import run_bfctl

        code, output = run_bfctl(["serve", *ARGS], tmp_path, env)
        assert code == 1 and said in output and "Traceback" not in output, output


@dependency(Scope.PROCESS)
class Greeting:
    def __init__(self) -> None:
        self.text = "hi"


def _flow() -> Flow:
    dispatcher = Dispatcher()

    @dispatcher.add
    async def price(greeting: Greeting) -> int:
        return len(greeting.text)

    @dispatcher.add
    def total(price: int) -> int:
        return price * 2

    app = Flow()
    app.use_dispatcher(dispatcher)
    service = app.service()

    @service.endpoint("/total", method="GET")
    async def show_total(total) -> int:  # a dispatcher result, by name
        return total

    @service.endpoint("/greet/{name}", method="GET")
    def greet(name: str, greeting: Greeting) -> str:
        if name == "nobody":
            raise RuntimeError("nobody to greet")
        return f"{greeting.text} {name}"

    return app


async def _served_with_store(store: TraceStore, paths: list[str]) -> list[int]:
    flow_app = FlowApp(_flow())
    app = flow_app.build()
    app[TRACE_STORE] = store
    runner, base = await on_loopback(app)
    queue = store.subscribe()
    try:
        async with aiohttp.ClientSession() as session:
            statuses = []
            for path in paths:
                async with session.get(base + path) as response:
                    statuses.append(response.status)
        for _ in paths:  # each finished trace reaches the subscriber
            await asyncio.wait_for(queue.get(), 10)
        return statuses
    finally:
        store.unsubscribe(queue)
        await runner.cleanup()


def test_the_dashboards_store_keeps_every_request_with_its_spans() -> None:
    store = TraceStore(capacity=2)
    statuses = asyncio.run(_served_with_store(store, ["/greet/ann", "/greet/nobody", "/greet/bob"]))
    assert statuses == [200, 500, 200]

    newest, failed = store.recent()  # capacity 2: the first fell out
    assert (newest["name"], newest["kind"], newest["status"], newest["error"]) == (
        "GET /greet/{name}",
        "request",
        "200",
        False,
    )
    assert newest["span_count"] == 4 and newest["duration_ms"] > 0
    assert (failed["status"], failed["error"]) == ("500", True)

    spans = {s["name"]: s for s in store.get(failed["trace_id"]) or []}
    assert set(spans) == {"GET /greet/{name}", "thread pool", "dependency Greeting", "handler greet"}
    root = spans["GET /greet/{name}"]
    assert root["parent_id"] is None and root["attributes"]["http.response.status_code"] == 500
    assert spans["thread pool"]["parent_id"] == root["span_id"]
    assert spans["dependency Greeting"]["parent_id"] == spans["thread pool"]["span_id"]
    assert spans["dependency Greeting"]["attributes"]["bf.scope"] == "PROCESS"
    assert spans["handler greet"]["error"] == "RuntimeError: nobody to greet"
    assert spans["dependency Greeting"]["error"] is None
    assert all(s["start_ms"] >= 0 and s["duration_ms"] >= 0 for s in spans.values())
    assert store.get("0" * 32) is None


def test_dispatcher_functions_are_spans_of_the_request() -> None:
    store = TraceStore()
    assert asyncio.run(_served_with_store(store, ["/total"])) == [200]
    (summary,) = store.recent()
    recorded = store.get(summary["trace_id"]) or []
    spans = {s["name"]: s for s in recorded}
    root = spans["GET /total"]
    assert spans["dispatcher price"]["attributes"] == {
        "bf.dispatcher.function": "price",
        "bf.scope": "PROCESS",
        "bf.async": True,
    }
    assert spans["dispatcher price"]["parent_id"] == root["span_id"]
    # sync steps each alone in a trip to the pool: a span each, covering its trip
    assert "thread pool" not in spans
    for name in ("dependency Greeting", "dispatcher total"):
        assert spans[name]["parent_id"] == root["span_id"] and spans[name]["attributes"]["bf.pool_trip"] is True
    assert spans["dispatcher total"]["attributes"]["bf.async"] is False
    # each waits on what it needs: Greeting before price, price before total, total before the handler
    order = ["dependency Greeting", "dispatcher price", "dispatcher total", "handler show_total"]
    ends = [spans[name]["start_ms"] + spans[name]["duration_ms"] for name in order]
    starts = [spans[name]["start_ms"] for name in order]
    assert all(ends[i] <= starts[i + 1] for i in range(3)), (starts, ends)
