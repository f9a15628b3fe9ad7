"""The local dashboard of a flow served by several workers: whichever worker answers a page, it
shows every worker's requests, log lines and counters, and a worker that died leaves it whole."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from support import Server, read_events, read_json, serving, wait_until, write

FLOW = """
import dataclasses
import logging
import os

from buildflow import Flow
from buildflow.io.local import File
from buildflow.types.portable import FileFormat

log = logging.getLogger("greeter")
app = Flow(flow_id="greeter")
service = app.service(service_id="greeter")


@service.endpoint("/hello/{n}", method="GET")
def hello(n: int) -> dict:
    log.info("hello %s", n)
    return {"n": n, "worker": os.getpid()}


@dataclasses.dataclass
class Visit:
    n: int


@app.collector("/visits", method="POST", sink=File("rows/visits.csv", FileFormat.CSV))
def visit(v: Visit) -> Visit:
    return v
"""
#: Times each page is asked for: every ask may land on either worker.
ASKS = 8


def greeter(tmp_path: Path) -> Path:
    write(tmp_path / "main.py", FLOW)
    return tmp_path


def hello(server: Server, n: int) -> tuple[str, int]:
    """GET /hello/<n> in a trace of its own: the trace id, and the worker that answered."""
    trace_id = os.urandom(16).hex()
    headers = {"traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01"}
    request = urllib.request.Request(f"{server.url}/hello/{n}", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return trace_id, json.loads(response.read())["worker"]


def greeted_by_both(server: Server, first: int = 0) -> dict[str, int]:
    """Requests sent (each on a connection of its own, which the kernel hands to either worker)
    until both workers answered some: each one's trace id and the worker that answered it."""
    answered: dict[str, int] = {}
    n = first

    def both() -> bool:
        """both workers answered a request"""
        nonlocal n
        trace_id, worker = hello(server, n)
        answered[trace_id] = worker
        n += 1
        return len(set(answered.values())) == 2

    wait_until(both)
    return answered


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_every_page_shows_every_workers_requests_lines_and_counters(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = greeter(tmp_path)
    with serving(["main.py", "--apply", "--port", "0", "--workers", "2"], project, bfctl_env) as server:
        answered = greeted_by_both(server)
        workers = set(answered.values())
        visits = 0

        def both_wrote() -> bool:
            """both workers wrote visits (a File sink writes a file per worker)"""
            nonlocal visits
            assert server.call("POST", "/visits", json.dumps({"n": visits}).encode())[0] == 200
            visits += 1
            return len(list((project / "rows").glob("visits-*.csv"))) == 2

        wait_until(both_wrote)
        [run] = (project / ".buildflow" / "workers").iterdir()
        private = {int(file.name): int(file.read_text()) for file in run.iterdir()}
        assert private.keys() == workers
        for worker, port in private.items():
            listening = [c.laddr for c in psutil.Process(worker).net_connections() if c.status == psutil.CONN_LISTEN]
            assert ("127.0.0.1", port) in listening  # loopback only
            assert status_of(f"http://127.0.0.1:{port}/logs", {"Host": "rebound.example"}) == 403
        for _ in range(ASKS):
            listed = {t["trace_id"]: t.get("worker") for t in read_json(server, "/_bf/api/traces")}
            assert answered.keys() <= listed.keys()
            assert {trace_id: listed[trace_id] for trace_id in answered} == answered
            for trace_id, worker in answered.items():
                trace = read_json(server, f"/_bf/api/traces/{trace_id}")
                assert (trace["worker"], trace["spans"][0]["name"]) == (worker, "GET /hello/{n}")
            lines = [line for line in read_json(server, "/_bf/api/logs") if line["logger"] == "greeter"]
            assert {f"hello {n}" for n in range(len(answered))} <= {line["message"] for line in lines}
            assert {line.get("worker") for line in lines} == workers

        def all_visits_counted() -> bool:
            """the Data page counts every worker's rows"""
            [sink] = read_json(server, "/_bf/api/data")["sinks"]
            return bool(sink["rows_written"] == visits)

        wait_until(all_visits_counted)
        for _ in range(ASKS):
            [sink] = read_json(server, "/_bf/api/data")["sinks"]
            assert sink["rows_written"] == visits and sink["queued"] == 0
        assert status_of(server.url + "/_bf/api/traces/" + "0" * 32) == 404
        assert server.stop() == 0
    assert list((project / ".buildflow" / "workers").iterdir()) == []  # each worker took its port's name back


def test_the_event_stream_brings_the_other_workers_requests(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = greeter(tmp_path)
    with serving(["main.py", "--apply", "--port", "0", "--workers", "2"], project, bfctl_env) as server:
        greeted_by_both(server)  # both listen, and have named their private ports
        stream = urllib.request.urlopen(server.url + "/_bf/events", timeout=30)
        read_events(stream, {"data": lambda figures: figures.get("workers") == 2})  # the sibling is followed
        answered = greeted_by_both(server, first=1000)
        seen: dict[str, int] = {}
        greetings: set[str] = set()

        def every(traces: list[dict[str, Any]]) -> bool:
            seen.update((t["trace_id"], t["worker"]) for t in traces)
            return answered.items() <= seen.items()

        def said(lines: list[dict[str, Any]]) -> bool:
            greetings.update(line["message"] for line in lines if line["logger"] == "greeter")
            return {f"hello {n}" for n in range(1000, 1000 + len(answered))} <= greetings

        read_events(stream, {"traces": every, "logs": said})
        stream.close()
        assert server.stop() == 0


def test_a_worker_that_died_leaves_the_pages_whole(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = greeter(tmp_path)
    with serving(["main.py", "--apply", "--port", "0", "--workers", "2"], project, bfctl_env) as server:
        answered = greeted_by_both(server)
        dead, alive = sorted(set(answered.values()))
        os.kill(dead, signal.SIGKILL)

        def gone() -> bool:
            """the killed worker is gone (a zombie until the supervisor reaps it)"""
            try:
                return psutil.Process(dead).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        wait_until(gone)
        served: list[tuple[str, int]] = []

        def answered_after_the_kill() -> bool:
            """a request after the kill answered (one the kernel still routed to the killed
            worker's closing socket is reset: the client's to send again)"""
            try:
                served.append(hello(server, 500))
            except ConnectionResetError:
                return False
            return True

        wait_until(answered_after_the_kill)
        ((late, worker),) = served
        assert worker == alive
        for _ in range(ASKS):
            listed = {t["trace_id"] for t in read_json(server, "/_bf/api/traces")}
            assert listed == {late} | {t for t, w in answered.items() if w == alive}
            assert read_json(server, "/_bf/api/data")["workers"] == 1
            assert any(line["message"] == "hello 500" for line in read_json(server, "/_bf/api/logs"))
        server.stop()
