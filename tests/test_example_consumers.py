"""The consumer examples, served by a real ``bfctl serve``: events through Pub/Sub into a
PostgreSQL table (on the durable local log and on Google's emulator), and files dropped in a
folder becoming rows."""

from __future__ import annotations

import csv
import json
import shutil
import urllib.request
from pathlib import Path

import pytest
from support import REPO_ROOT, run_bfctl, serving, wait_until


def example(name: str, tmp_path: Path) -> Path:
    project = tmp_path / name
    shutil.copytree(REPO_ROOT / "examples" / name, project, ignore=shutil.ignore_patterns("__pycache__", ".buildflow"))
    return project


def post(url: str, body: object) -> int:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


@pytest.mark.parametrize("pubsub", ["log", "emulator"])
def test_events_go_through_the_topic_into_the_table(tmp_path: Path, bfctl_env: dict[str, str], pubsub: str) -> None:
    project = example("pubsub_to_table", tmp_path)
    env = {**bfctl_env, "BFCTL_LOCAL_PUBSUB": pubsub}
    code, output = run_bfctl(["apply", "--yes"], project, env)
    assert code == 0, output
    try:
        with serving(["--port", "0", "--no-access-log"], project, env) as server:
            server.wait_for(lambda line: "CONSUME  store ← GCPPubSubSubscription my-project/events-store" in line)
            events = [{"user": f"u{n}", "action": "click"} for n in range(25)]
            assert [post(server.url + "/events", e) for e in events] == [200] * len(events)

            def all_stored() -> bool:
                """every published event is a row"""
                return json.loads(server.get("/count")[1]) == {"rows": len(events)}

            wait_until(all_stored)
            assert server.stop() == 0, server.output
    finally:
        assert run_bfctl(["destroy", "--yes"], project, env)[0] == 0


def test_dropped_files_become_rows_even_those_dropped_while_nothing_ran(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    project = example("watch", tmp_path)
    code, output = run_bfctl(["apply", "--yes"], project, bfctl_env)
    assert code == 0, output
    incoming = project / "incoming"
    (incoming / "early.json").write_text(json.dumps([{"sensor": "a", "value": 1}]))

    def rows() -> list[dict[str, str]]:
        return [r for path in sorted((project / "rows").glob("*.csv")) for r in csv.DictReader(path.open())]

    with serving(["--no-access-log"], project, bfctl_env) as server:
        (incoming / ".late.json.tmp").write_text(json.dumps([{"sensor": "b", "value": 2}, {"sensor": "c", "value": 3}]))
        (incoming / ".late.json.tmp").rename(incoming / "late.json")
        (incoming / "broken.json").write_text("not json")

        def three_rows() -> bool:
            """the two files' three records are rows"""
            return len(rows()) == 3

        wait_until(three_rows)
        server.wait_for(lambda line: "broken.json" in line or "read_file" in line)
        assert server.stop() == 0, server.output
    assert sorted((r["sensor"], float(r["value"])) for r in rows()) == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert {Path(r["source"]).name for r in rows()} == {"early.json", "late.json"}

    # the broken file was not acknowledged: it comes again at the next start, still failing, never dropped
    with serving(["--no-access-log"], project, bfctl_env) as server:
        server.wait_for(lambda line: ("read_file" in line and "JSON" in line) or "Expecting value" in line)
        assert server.stop() == 0
    assert len(rows()) == 3
