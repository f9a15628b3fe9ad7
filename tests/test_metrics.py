"""``/_bf/metrics`` of a real ``bfctl serve``: requests made over loopback, then the scrape parsed
with prometheus-client's own parser and every count compared with what was sent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from support import serving, write

FLOW = """
import dataclasses

from buildflow import Flow
from buildflow.io.local import File
from buildflow.types.portable import FileFormat

app = Flow()


@dataclasses.dataclass
class Event:
    n: int


@app.collector("/events", method="POST", sink=File("out/events.json", FileFormat.JSON))
def collect(event: Event) -> Event:
    return event


@app.collector("/broken", method="POST", sink=File("blocked/events.json", FileFormat.JSON))
def broken(event: Event) -> Event:
    return event


service = app.service()


@service.endpoint("/hi", method="GET")
def hi(n: int) -> dict:
    return {"n": n}
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(text: str) -> Samples:
    """Every sample by name and labels (without ``worker``, checked on its own)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = dict(s.labels)
            assert labels.pop("worker", "").isdigit()  # each worker answers for itself
            samples[s.name, frozenset(labels.items())] = s.value
    return samples


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_latency_batches_and_write_errors(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "flow.py", FLOW)
    args = ["flow.py", "--apply", "--port", "0", "--workers", "1", "--no-access-log"]
    with serving(args, tmp_path, bfctl_env) as server:
        shutil.rmtree(tmp_path / "blocked")  # a file where the sink writes into a folder: its writes fail
        (tmp_path / "blocked").write_text("not a folder")
        for n in range(3):
            assert server.call("GET", f"/hi?n={n}")[0] == 200
        assert server.call("GET", "/hi?n=x")[0] == 422
        assert server.call("GET", "/nowhere")[0] == 404
        for n in range(4):  # one at a time: each write carries one request's row
            assert server.call("POST", "/events", json.dumps({"n": n}).encode())[0] == 200
        assert server.call("POST", "/broken", b'{"n": 1}')[0] == 503
        status, text = server.get("/_bf/metrics")
        assert status == 200
        samples = _scrape(text)
        assert server.stop() == 0

    requests = "buildflow_requests_total"
    assert _get(samples, requests, method="GET", route="/hi", status="200") == 3
    assert _get(samples, requests, method="GET", route="/hi", status="422") == 1
    assert _get(samples, requests, method="*", route="(unmatched)", status="404") == 1
    assert _get(samples, requests, method="POST", route="/events", status="200") == 4
    assert _get(samples, requests, method="POST", route="/broken", status="503") == 1

    latency = "buildflow_request_duration_seconds"
    assert _get(samples, f"{latency}_count", method="GET", route="/hi") == 4
    assert _get(samples, f"{latency}_bucket", method="GET", route="/hi", le="+Inf") == 4
    assert 0 < _get(samples, f"{latency}_sum", method="GET", route="/hi") < 60

    events, blocked = "file:out/events.json", "file:blocked/events.json"
    assert _get(samples, "buildflow_sink_batch_rows_count", sink=events) == 4
    assert _get(samples, "buildflow_sink_batch_rows_sum", sink=events) == 4
    assert _get(samples, "buildflow_sink_batch_rows_bucket", sink=events, le="1.0") == 4
    assert _get(samples, "buildflow_sink_queued_rows", sink=events) == 0
    assert _get(samples, "buildflow_sink_write_errors_total", sink=events, reason="unavailable") == 0
    assert _get(samples, "buildflow_sink_write_errors_total", sink=blocked, reason="unavailable") == 1
