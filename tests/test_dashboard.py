"""The local dashboard over HTTP: where it is on, what its JSON says about a served flow (its
picture, traces, data, resources and log lines), its live event stream, and who may reach it.

The browser walks through its pages in test_dashboard_browser.py.
"""

from __future__ import annotations

import json
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from support import FLOWS, read_events, read_json, run_bfctl, serving, traced_get, write

from bfctl.runtime.dashboard import policy
from bfctl.runtime.dashboard.routes import redacted
from bfctl.runtime.errors import StartupError

SHOP = (FLOWS / "shop.py").read_text()
#: Every interface: where a server is reachable from the network.
ANYWHERE = "0.0.0.0"  # noqa: S104 - what the tests bind (and ask the policy about) on purpose
#: What the shop flow is made of: a box each in the picture.
SHOP_BOXES = {
    ("service", "store"),
    ("endpoint", "get_item"),
    ("endpoint", "boom"),
    ("collector", "take_order"),
    ("consumer", "read_file"),
    ("dependency", "Pricing"),
    ("dependency", "Catalog"),
    ("dispatcher", "stock"),
    ("resource", "DuckDBTable"),
    ("resource", "LocalFileChangeStream"),
    ("resource", "File"),
}


def shop(tmp_path: Path) -> Path:
    write(tmp_path / "main.py", SHOP)
    return tmp_path


@pytest.mark.parametrize(
    ("requested", "target", "host", "environ", "expected"),
    [
        (None, "local", "127.0.0.1", {}, True),
        (None, "local", "::1", {}, True),
        (None, "local", "localhost", {}, True),
        (None, "local", ANYWHERE, {}, False),  # reachable from the network: off unless asked
        (None, "gcp", "127.0.0.1", {}, False),  # serving against the deployed stack's resources
        (None, "local", "127.0.0.1", {"K_SERVICE": "shop"}, False),
        (None, "local", "127.0.0.1", {"BFCTL_DASHBOARD": "off"}, False),
        (None, "local", ANYWHERE, {"BFCTL_DASHBOARD": "on"}, True),
        (True, "gcp", ANYWHERE, {}, True),
        (False, "local", "127.0.0.1", {"BFCTL_DASHBOARD": "on"}, False),
    ],
)
def test_the_dashboard_is_on_where_only_this_machine_reaches_it(
    requested: bool | None, target: str, host: str, environ: dict[str, str], expected: bool
) -> None:
    assert policy.wanted(requested, target, host, environ) is expected


@pytest.mark.parametrize("environ", [{"BFCTL_DASHBOARD": "on"}, {}])
def test_a_cloud_run_service_refuses_the_dashboard(environ: dict[str, str]) -> None:
    requested = None if environ else True
    with pytest.raises(StartupError, match="never served by a deployed service"):
        policy.wanted(requested, "local", ANYWHERE, {"K_SERVICE": "shop", **environ})
    with pytest.raises(StartupError, match="BFCTL_DASHBOARD='maybe': use on or off"):
        policy.wanted(None, "local", "127.0.0.1", {"BFCTL_DASHBOARD": "maybe"})


def test_peers_and_host_names_the_dashboard_answers() -> None:
    assert [policy.is_loopback(p) for p in ("127.0.0.1", "127.8.0.1", "::1", "::ffff:127.0.0.1", "LOCALHOST")] == [
        True
    ] * 5
    assert not any(policy.is_loopback(p) for p in ("192.0.2.2", "::ffff:192.0.2.2", "example.com", ""))
    typed = ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "0.0.0.0:8000", "192.0.2.2", "Localhost")
    assert all(policy.typed_by_hand(h) for h in typed)
    assert not any(policy.typed_by_hand(h) for h in ("rebound.example:8000", "localhost.example", ""))


def test_outputs_are_shown_without_their_secrets() -> None:
    outputs = {
        "host": "127.0.0.1",
        "password": "SCRAM-SHA-256$4096:abc",
        "password_file": ".buildflow/local/dev/sink-password",
        "url": "postgresql://notes:s3cret@127.0.0.1:5432/notes",
        "api_key": "k-123",
        "user": {"name": "notes", "token": "t-1"},
        "port": 5432,
    }
    shown = redacted(outputs)
    assert shown == {
        "host": "127.0.0.1",
        "password": "(secret)",
        "password_file": "(secret)",
        "url": "postgresql://notes:(secret)@127.0.0.1:5432/notes",
        "api_key": "(secret)",
        "user": {"name": "notes", "token": "(secret)"},
        "port": 5432,
    }
    assert not any(s in json.dumps(shown) for s in ("SCRAM", "s3cret", "k-123", "t-1", "sink-password"))


def test_serve_prints_the_dashboard_url_and_serves_the_flow_as_it_runs(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    project = shop(tmp_path)
    with serving(["main.py", "--apply", "--port", "0"], project, bfctl_env) as server:
        server.wait_for(lambda line: line.startswith("Dashboard on "))
        status, page = server.get("/_bf/")
        script = server.get("/_bf/assets/dashboard.js")
        picture = read_json(server, "/_bf/api/flow")
        item_trace = traced_get(server, "/items/2")
        assert server.call("POST", "/orders", b'{"item_id": 5, "quantity": 3}') == (200, '{"success":true}')
        traces = read_json(server, "/_bf/api/traces")
        spans = read_json(server, f"/_bf/api/traces/{item_trace}")["spans"]
        order = next(t for t in traces if t["name"] == "collector POST /orders")
        order_spans = read_json(server, f"/_bf/api/traces/{order['trace_id']}")["spans"]
        rows = read_json(server, "/_bf/api/rows?sink=duckdb:shop.duckdb:orders")
        resources = read_json(server, "/_bf/api/resources")
        logs = read_json(server, "/_bf/api/logs")
        data = read_json(server, "/_bf/api/data")
        backlogs = read_json(server, "/_bf/api/backlogs")
        missing = server.call("GET", "/_bf/api/traces/" + "0" * 32)
        port = server.url.rsplit(":", 1)[1]
        try:  # a page of another site whose name was made to resolve to 127.0.0.1 (DNS rebinding)
            read_json(server, "/_bf/api/resources", {"Host": f"rebound.example:{port}"})
            rebound = 200
        except urllib.error.HTTPError as e:
            rebound = e.code
        by_name = read_json(server, "/_bf/api/data", {"Host": f"localhost:{port}"})
        assert server.stop() == 0

    assert f"Dashboard on {server.url}/_bf/" in server.lines
    assert status == 200 and '<script src="/_bf/assets/dashboard.js"' in page
    assert script[0] == 200 and "EventSource" in script[1]
    assert {(n["kind"], n["label"]) for n in picture["nodes"]} == SHOP_BOXES
    boxes = {n["label"]: n["id"] for n in picture["nodes"]}
    edges = {(e["from"], e["to"], e["label"]) for e in picture["edges"]}
    assert (boxes["take_order"], boxes["DuckDBTable"], "writes") in edges
    assert (boxes["LocalFileChangeStream"], boxes["read_file"], "reads") in edges
    assert (boxes["get_item"], boxes["Pricing"], "") in edges
    assert (boxes["Pricing"], boxes["Catalog"], "") in edges
    assert {"dependency Pricing", "dispatcher stock", "handler get_item"} <= {s["name"] for s in spans}
    assert any(s["name"] == "sink write" and s["attributes"]["bf.rows"] == 1 for s in order_spans)
    assert rows == {"columns": ["item_id", "quantity"], "rows": [[5, 3]]}
    assert {r["id"] for r in resources["resources"]} == {
        "duckdb:shop.duckdb:orders",
        f"file-changes:{project}/incoming",
        "file:rows/readings.csv",
    }
    assert all(r["applied"] for r in resources["resources"])
    assert any(line["logger"] == "shop" and line["message"] == "item 2 looked up" for line in logs)
    [orders] = [s for s in data["sinks"] if s["id"] == "duckdb:shop.duckdb:orders"]
    assert orders["rows_written"] == 1 and orders["queued"] == 0
    assert [c["name"] for c in data["consumers"]] == ["read_file"]
    assert backlogs == {"read_file": None}  # a folder's file changes: no subscription to count
    assert missing[0] == 404
    assert rebound == 403
    assert by_name == data | {"sinks": by_name["sinks"]}  # the same figures, a moment later


def test_the_event_stream_brings_traces_log_lines_and_figures_and_never_holds_the_exit(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    project = shop(tmp_path)
    # a long grace: a stream that held the exit would hold it this long
    with serving(["main.py", "--apply", "--port", "0", "--grace", "60"], project, bfctl_env) as server:
        stream = urllib.request.urlopen(server.url + "/_bf/events", timeout=30)
        assert stream.headers["Content-Type"] == "text/event-stream"
        server.call("POST", "/orders", b'{"item_id": 1, "quantity": 1}')
        trace_id = traced_get(server, "/items/3")
        read_events(
            stream,
            {
                "traces": lambda ts: any(t["trace_id"] == trace_id and t["name"] == "GET /items/{item_id}" for t in ts),
                "logs": lambda lines: any(line["message"] == "item 3 looked up" for line in lines),
                "data": lambda d: any(s["rows_written"] == 1 for s in d["sinks"]),
            },
        )
        assert server.stop(timeout=30) == 0  # well within the grace period the stream would have held
        stream.close()


def test_no_dashboard_when_turned_off_or_bound_to_the_network(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = shop(tmp_path)
    with serving(["main.py", "--apply", "--port", "0", "--no-dashboard"], project, bfctl_env) as off:
        off.wait_for(lambda line: line.startswith("Press Ctrl+C"))
        page = off.call("GET", "/_bf/")
        health = off.call("GET", "/_bf/health")
        assert off.stop() == 0
    assert page[0] == 404 and health[0] == 200
    assert not any(line.startswith("Dashboard on") for line in off.lines)

    with serving(["main.py", "--host", ANYWHERE, "--port", "0"], project, bfctl_env) as network:
        network.wait_for(lambda line: line.startswith("Press Ctrl+C"))
        page = network.call("GET", "/_bf/")
        assert network.stop() == 0
    assert page[0] == 404
    assert not any(line.startswith("Dashboard on") for line in network.lines)


def _address_of_this_machine() -> str:
    """An IPv4 address of this machine other than loopback (the test needs one to come from)."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    pytest.fail("this machine has no IPv4 address but loopback: the dashboard's refusal of others is unchecked")


def test_asked_for_on_the_network_it_answers_this_machine_only(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = shop(tmp_path)
    address = _address_of_this_machine()
    env = {**bfctl_env, "BFCTL_DASHBOARD": "on"}
    with serving(["main.py", "--apply", "--host", ANYWHERE, "--port", "0"], project, env) as server:
        server.wait_for(lambda line: line.startswith("Dashboard on "))
        port = server.url.rsplit(":", 1)[1]
        local = server.call("GET", "/_bf/api/flow")
        try:
            urllib.request.urlopen(f"http://{address}:{port}/_bf/api/flow", timeout=10)
            remote = 200
        except urllib.error.HTTPError as e:
            remote, detail = e.code, json.loads(e.read())
        flow_route = urllib.request.urlopen(f"http://{address}:{port}/items/1", timeout=10).status
        assert server.stop() == 0
    assert local[0] == 200
    assert remote == 403 and "only this machine" in detail["detail"]
    assert flow_route == 200  # the flow's own routes answer everyone, as before


def test_cloud_run_refuses_to_start_with_the_dashboard(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = shop(tmp_path)
    env = {**bfctl_env, "K_SERVICE": "shop", "BFCTL_DASHBOARD": "on", "PORT": "0"}
    code, output = run_bfctl(["serve", "main.py", "--log-format", "text"], project, env)
    assert code == 1
    assert "the dashboard is never served by a deployed service" in output
    assert "Traceback" not in output


def test_dev_serves_the_dashboard_and_prints_its_url_at_each_restart(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = shop(tmp_path)
    dev = [sys.executable, "-m", "bfctl", "dev"]
    with serving(["main.py", "--port", "0"], project, bfctl_env, command=dev) as server:
        server.wait_for(lambda line: line.startswith("Dashboard on "))
        first = read_json(server, "/_bf/api/flow")
        main = project / "main.py"
        main.write_text(main.read_text().replace('"/boom"', '"/bang"'))
        server.wait_for(lambda line: line.startswith("Dashboard on "), count=2)
        second = read_json(server, "/_bf/api/flow")
        assert server.stop() == 0
    announced = [line for line in server.lines if line.startswith("Dashboard on ")]
    assert announced == [f"Dashboard on {server.url}/_bf/"] * 2
    assert "GET /boom" in {n["detail"] for n in first["nodes"]}
    assert "GET /bang" in {n["detail"] for n in second["nodes"]}

    with serving(["main.py", "--port", "0", "--no-dashboard"], project, bfctl_env, command=dev) as quiet:
        quiet.wait_for(lambda line: line.startswith("Press Ctrl+C"))
        page = quiet.call("GET", "/_bf/")
        assert quiet.stop() == 0
    assert page[0] == 404
