"""Cloud Run's contract, kept by a real ``bfctl serve`` subprocess: the port from ``$PORT``,
0.0.0.0 on Cloud Run only, the startup probe path, JSON log lines that carry the trace of the
request they were written for, and an exit 0 within 10 s of SIGTERM with every acknowledged
collector row stored."""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
from support import Server, run_bfctl, serving, write

from bfctl.runtime.cloud_logging import context_from_headers, project_id

FLOW = """
import logging

from buildflow import Flow

log = logging.getLogger("notes")
app = Flow()
service = app.service()


@service.endpoint("/hello", method="GET")
def hello() -> str:
    log.info("sync hello")
    return "hello"


@service.endpoint("/async", method="GET")
async def hello_async() -> str:
    log.warning("async hello")
    return "hi"


@service.endpoint("/boom", method="GET")
async def boom() -> str:
    raise RuntimeError("boom")
"""
TRACE_ID = "105445aa7843bc8bf206b12000100000"

COLLECTOR_FLOW = """
import dataclasses
import logging

from buildflow import Flow
from buildflow.io.local import File
from buildflow.types.portable import FileFormat

log = logging.getLogger("events")
app = Flow()


@dataclasses.dataclass
class Event:
    n: int


# Rows wait up to 2 s for company before they are written, so requests are in flight at SIGTERM.
@app.collector("/events", method="POST", sink=File("stored/events.json", FileFormat.JSON), max_wait=2.0)
def collect(event: Event) -> Event:
    log.info("collected %d", event.n)
    return event
"""
#: Cloud Run sends SIGKILL this long after SIGTERM.
CLOUD_RUN_SIGTERM_BOUND = 10.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(("k_service", "host"), [("notes", "0.0.0.0"), (None, "127.0.0.1")])  # noqa: S104
def test_port_comes_from_the_environment(
    tmp_path: Path, bfctl_env: dict[str, str], k_service: str | None, host: str
) -> None:
    write(tmp_path / "main.py", FLOW)
    port = _free_port()
    env = {**bfctl_env, "PORT": str(port)}
    env.pop("K_SERVICE", None)
    if k_service:
        env["K_SERVICE"] = k_service

    with serving(["main.py"], tmp_path, env) as server:
        assert server.url == f"http://{host}:{port}"
        server.url = f"http://127.0.0.1:{port}"
        assert server.get("/hello") == (200, '"hello"')
        assert server.get("/_bf/health") == (200, '{"status":"ok"}')
        assert server.stop() == 0


def test_flags_win_over_the_environment(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", FLOW)
    env = {**bfctl_env, "PORT": str(_free_port()), "K_SERVICE": "notes"}

    with serving(["main.py", "--host", "127.0.0.1", "--port", "0"], tmp_path, env) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert not server.url.endswith(f":{env['PORT']}")
        assert server.get("/hello")[0] == 200


@pytest.mark.parametrize(("target", "expected"), [("main.py", "PORT='eighty'"), ("missing.py", "missing.py")])
def test_start_up_errors_on_cloud_run_are_one_json_line(
    tmp_path: Path, bfctl_env: dict[str, str], target: str, expected: str
) -> None:
    write(tmp_path / "main.py", FLOW)
    env = {**bfctl_env, "PORT": "eighty" if target == "main.py" else "8080", "K_SERVICE": "notes"}
    code, output = run_bfctl(["serve", target], tmp_path, env)
    assert code == 1
    [entry] = _entries(output.splitlines())
    assert entry["severity"] == "ERROR"
    assert entry["message"].startswith("Error: ") and expected in entry["message"], entry


def test_a_port_that_is_not_a_number_is_a_clear_error(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", FLOW)
    code, output = run_bfctl(["serve", "main.py"], tmp_path, {**bfctl_env, "PORT": "eighty"})
    assert code == 1
    assert output.startswith("Error: PORT='eighty' is not a TCP port number"), output
    assert "Traceback" not in output


def _get(server: Server, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(server.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def _entries(lines: list[str]) -> list[dict[str, Any]]:
    """Every output line, each of which must be one JSON object."""
    entries = []
    for line in lines:
        entry = json.loads(line)
        assert isinstance(entry, dict) and entry["severity"] and "message" in entry, line
        entries.append(entry)
    return entries


def test_json_logs_carry_each_requests_trace(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", FLOW)
    env = {**bfctl_env, "GOOGLE_CLOUD_PROJECT": "notes-prod"}
    env.pop("K_SERVICE", None)
    traced = {"X-Cloud-Trace-Context": f"{TRACE_ID}/42;o=1"}

    with serving(["main.py", "--port", "0", "--log-format", "json"], tmp_path, env) as server:
        assert _get(server, "/hello", traced)[0] == 200
        assert _get(server, "/async", {"X-Cloud-Trace-Context": f"{TRACE_ID[::-1]}/7", "X-Request-ID": "r-7"})[0] == 200
        status, headers, body = _get(server, "/boom", traced)
        assert _get(server, "/hello", {})[0] == 200
        assert server.stop() == 0

    assert status == 500
    entries = _entries(server.lines)
    trace = f"projects/notes-prod/traces/{TRACE_ID}"
    by_message: dict[str, dict[str, Any]] = {}
    for entry in entries:
        by_message.setdefault(entry["message"].splitlines()[0], entry)  # the first of each
    sync_line = by_message["sync hello"]
    assert (sync_line["severity"], sync_line["logger"]) == ("INFO", "notes")
    assert sync_line["logging.googleapis.com/trace"] == trace
    assert sync_line["logging.googleapis.com/spanId"] == "000000000000002a"  # 42, as Cloud Logging wants it
    assert sync_line["logging.googleapis.com/trace_sampled"] is True
    async_line = by_message["async hello"]
    assert async_line["severity"] == "WARNING"
    assert async_line["logging.googleapis.com/trace"] == f"projects/notes-prod/traces/{TRACE_ID[::-1]}"
    assert async_line["logging.googleapis.com/trace_sampled"] is False
    assert async_line["request_id"] == "r-7"

    request_id = json.loads(body)["request_id"]
    assert headers["X-Request-ID"] == request_id
    failure = next(e for e in entries if e["severity"] == "ERROR")
    assert failure["request_id"] == request_id
    assert failure["logging.googleapis.com/trace"] == trace
    assert "RuntimeError: boom" in failure["message"]  # the traceback, inside the same entry

    access = [e for e in entries if "httpRequest" in e]
    assert [(e["httpRequest"]["requestUrl"], e["httpRequest"]["status"]) for e in access] == [
        ("/hello", 200),
        ("/async", 200),
        ("/boom", 500),
        ("/hello", 200),
    ]
    assert [e.get("logging.googleapis.com/trace") for e in access[:3]] == [
        trace,
        f"projects/notes-prod/traces/{TRACE_ID[::-1]}",
        trace,
    ]
    assert access[1]["request_id"] == "r-7"
    assert access[3]["request_id"] and access[3]["request_id"] != access[0]["request_id"]
    # no header: the trace the server began (the dashboard keeps it) is the one its lines name
    begun = access[3]["logging.googleapis.com/trace"]
    assert re.fullmatch(r"projects/notes-prod/traces/[0-9a-f]{32}", begun) and TRACE_ID not in begun
    untraced = [e for e in entries if e["message"] == "sync hello"][1]
    assert untraced["logging.googleapis.com/trace"] == begun
    assert untraced["request_id"] == access[3]["request_id"]


def test_text_logs_stay_text(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", FLOW)
    env = {**bfctl_env, "K_SERVICE": "notes"}

    with serving(["main.py", "--port", "0", "--log-format", "text"], tmp_path, env) as server:
        assert _get(server, "/hello", {"X-Cloud-Trace-Context": f"{TRACE_ID}/1;o=1"})[0] == 200
        assert server.stop() == 0

    assert any(line.endswith("INFO notes: sync hello") for line in server.lines), server.output
    assert not any(line.startswith("{") for line in server.lines), server.output
    assert TRACE_ID not in server.output


@pytest.mark.parametrize(
    ("header", "trace", "span"),
    [
        (f"{TRACE_ID}/1;o=1", f"projects/p/traces/{TRACE_ID}", "0000000000000001"),
        (f"{TRACE_ID}/18446744073709551615", f"projects/p/traces/{TRACE_ID}", "ffffffffffffffff"),
        (f"{TRACE_ID}/x1;o=1", f"projects/p/traces/{TRACE_ID}", None),
        (TRACE_ID, f"projects/p/traces/{TRACE_ID}", None),
        ("not-hex/1;o=1", None, None),
        ("", None, None),
    ],
)
def test_trace_header_parsing(header: str, trace: str | None, span: str | None) -> None:
    context = context_from_headers({"X-Cloud-Trace-Context": header}, "p")
    assert (context.trace, context.span_id) == (trace, span)


@pytest.fixture
def metadata_server() -> Iterator[str]:
    """A stand-in for the GCE metadata server: answers the project id to requests that say
    ``Metadata-Flavor: Google``, as the real one does."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/computeMetadata/v1/project/project-id" and self.headers["Metadata-Flavor"] == "Google"
            body = b"from-metadata" if ok else b"no"
            self.send_response(200 if ok else 403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield f"127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()


def test_project_comes_from_the_environment_else_the_metadata_server_on_cloud_run(metadata_server: str) -> None:
    assert project_id({"GOOGLE_CLOUD_PROJECT": "given", "K_SERVICE": "s", "GCE_METADATA_HOST": metadata_server}) == (
        "given"
    )
    assert project_id({"K_SERVICE": "s", "GCE_METADATA_HOST": metadata_server}) == "from-metadata"
    assert project_id({"GCE_METADATA_HOST": metadata_server}) is None  # not on Cloud Run: not asked
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        unreachable = f"127.0.0.1:{closed.getsockname()[1]}"
    assert project_id({"K_SERVICE": "s", "GCE_METADATA_HOST": unreachable}) is None


def test_without_a_project_the_trace_is_the_bare_id() -> None:
    assert context_from_headers({"X-Cloud-Trace-Context": f"{TRACE_ID}/1"}, None).trace == TRACE_ID


def _post_event(url: str, n: int) -> int:
    request = urllib.request.Request(
        url + "/events",
        data=json.dumps({"n": n}).encode(),
        headers={"Content-Type": "application/json", "X-Cloud-Trace-Context": f"{n:032x}/{n};o=1"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def test_sigterm_drains_in_flight_requests_and_stores_every_acknowledged_row(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    write(tmp_path / "main.py", COLLECTOR_FLOW)
    port = _free_port()
    env = {**bfctl_env, "PORT": str(port), "K_SERVICE": "events", "GOOGLE_CLOUD_PROJECT": "events-prod"}
    numbers = range(1, 6)
    assert run_bfctl(["apply", "main.py", "--yes"], tmp_path, bfctl_env)[0] == 0  # the File sink's folder

    with serving(["main.py"], tmp_path, env) as server, ThreadPoolExecutor(len(numbers)) as pool:
        url = f"http://127.0.0.1:{port}"
        answers = [pool.submit(_post_event, url, n) for n in numbers]
        server.wait_for(lambda line: '"message": "collected ' in line, count=len(numbers))  # all in flight
        code = server.stop(timeout=CLOUD_RUN_SIGTERM_BOUND)
        statuses = [answer.result() for answer in answers]

    assert code == 0, server.output
    assert statuses == [200] * len(numbers)
    stored = [
        json.loads(line) for path in (tmp_path / "stored").glob("*.json") for line in path.read_text().splitlines()
    ]
    assert sorted(row["n"] for row in stored) == list(numbers)

    entries = _entries(server.lines)
    for n in numbers:
        trace = f"projects/events-prod/traces/{n:032x}"
        collected = [e for e in entries if e["message"] == f"collected {n}"]
        access = [
            e
            for e in entries
            if e.get("httpRequest", {}).get("requestUrl") == "/events"
            and e.get("logging.googleapis.com/trace") == trace
        ]
        assert [e["logging.googleapis.com/trace"] for e in collected] == [trace]
        assert len(access) == 1 and access[0]["httpRequest"]["status"] == 200
        assert access[0]["request_id"] == collected[0]["request_id"]


def test_the_images_entrypoint_serves_with_the_outputs_the_service_is_given(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    """The Dockerfile's ENTRYPOINT, run as Cloud Run runs it: the stack's outputs come from
    $BUILDFLOW_OUTPUTS (nothing was applied here), the workers from $BFCTL_WORKERS, the port
    from $PORT; SIGTERM ends it with exit 0 and every acknowledged row stored."""
    from bfctl.providers.gcp.image import dockerfile
    from buildflow.io.local import File
    from buildflow.types.portable import FileFormat

    write(tmp_path / "main.py", COLLECTOR_FLOW.replace("max_wait=2.0", "max_wait=0.0"))
    entrypoint = json.loads(dockerfile("main.py:app").split("ENTRYPOINT ", 1)[1].splitlines()[0])
    stored = tmp_path / "given" / "events.json"
    stored.parent.mkdir()
    sink = File("stored/events.json", FileFormat.JSON).primitive_id()
    outputs = {sink: {"engine": "file", "path": str(stored), "format": "json", "directory": str(stored.parent)}}
    port = _free_port()
    env = {
        **bfctl_env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{bfctl_env['PATH']}",  # the image's python
        "PORT": str(port),
        "K_SERVICE": "events",
        "BFCTL_WORKERS": "2",
        "BUILDFLOW_OUTPUTS": json.dumps({"target": "local", "outputs": outputs}),
    }

    with serving([], tmp_path, env, command=entrypoint) as server:
        statuses = [_post_event(f"http://127.0.0.1:{port}", n) for n in range(1, 4)]
        workers = psutil.Process(server.process.pid).children()
        code = server.stop(timeout=CLOUD_RUN_SIGTERM_BOUND)

    assert code == 0, server.output
    assert statuses == [200, 200, 200]
    rows = [json.loads(line) for path in stored.parent.glob("*.json") for line in path.read_text().splitlines()]
    assert sorted(row["n"] for row in rows) == [1, 2, 3]
    assert not (tmp_path / ".buildflow").exists()  # no state read, nothing applied
    assert not (tmp_path / "stored").exists()
    assert len(workers) == 2
    assert all(line.startswith("{") for line in server.lines if line.strip())  # JSON log entries only


def test_outputs_that_are_not_the_gcp_targets_json_are_a_clear_error(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", FLOW)
    code, output = run_bfctl(["serve", "main.py"], tmp_path, {**bfctl_env, "BUILDFLOW_OUTPUTS": "{not json"})
    assert code == 1
    assert output.startswith("Error: BUILDFLOW_OUTPUTS is not the JSON the gcp target sets"), output


def test_flow_run_listens_on_port_from_the_environment(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", FLOW + "\nif __name__ == '__main__':\n    app.run()\n")
    port = _free_port()
    env = {**bfctl_env, "PORT": str(port)}
    env.pop("K_SERVICE", None)
    with serving([], tmp_path, env, command=[sys.executable, "main.py"]) as server:
        assert server.url == f"http://127.0.0.1:{port}"
        assert server.get("/hello") == (200, '"hello"')
        assert server.stop() == 0
