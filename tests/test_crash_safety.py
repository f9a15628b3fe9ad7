"""A collector killed with SIGKILL under load, several times: every row a client saw
acknowledged is in the sink afterwards (rows are durable before the 2xx is sent)."""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.error
import urllib.request
from pathlib import Path

from support import serving, write

FLOW = """
    import dataclasses
    from buildflow import Flow
    from buildflow.io.local import File
    from buildflow.types.portable import FileFormat

    @dataclasses.dataclass
    class Event:
        id: int
        client: int

    app = Flow()

    @app.collector(route="/events", method="POST", sink=File(file_path="out/events.json", file_format=FileFormat.JSON))
    def collect(event: Event) -> Event:
        return event
"""
CLIENTS = 8
ACKS_BEFORE_KILL = 150
KILLS = int(os.environ.get("CRASH_KILLS", "3"))


def _load(url: str, client: int, start: int, acked: list[int], stop: threading.Event) -> None:
    n = start
    while not stop.is_set():
        body = json.dumps({"id": client * 1_000_000 + n, "client": client}).encode()
        request = urllib.request.Request(url + "/events", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                if r.status == 200:
                    acked.append(client * 1_000_000 + n)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return  # the server is gone: not acknowledged
        n += 1


def test_acknowledged_rows_survive_sigkill(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "flow.py", FLOW)
    acked: list[int] = []
    next_id = [0] * CLIENTS
    for round_ in range(KILLS + 1):
        with serving(["flow.py", "--apply", "--port", "0", "--no-access-log"], tmp_path, bfctl_env) as server:
            stop = threading.Event()
            before = len(acked)
            mine: list[list[int]] = [[] for _ in range(CLIENTS)]
            threads = [threading.Thread(target=_load, args=(server.url, c, next_id[c], mine[c], stop))
                       for c in range(CLIENTS)]
            for t in threads:
                t.start()
            while sum(map(len, mine)) < ACKS_BEFORE_KILL and any(t.is_alive() for t in threads):
                threads[0].join(timeout=0.05)  # bounded wait on the clients, not a timing assumption
            if round_ < KILLS:
                server.process.send_signal(signal.SIGKILL)
            stop.set()
            for t in threads:
                t.join(timeout=30)
            if round_ == KILLS:
                assert server.stop() == 0
            for c in range(CLIENTS):
                acked.extend(mine[c])
                next_id[c] += 100_000  # ids of later rounds never collide with unacknowledged ones
            assert len(acked) - before >= ACKS_BEFORE_KILL
    stored: list[int] = []
    for path in (tmp_path / "out").glob("events-*.json"):
        for line in path.read_text().splitlines():
            if line.strip():  # a line cut by the kill is at most the last one of a file
                try:
                    stored.append(json.loads(line)["id"])
                except json.JSONDecodeError:
                    pass
    missing = set(acked) - set(stored)
    duplicates = len(stored) - len(set(stored))
    print(f"acked {len(acked)}, stored {len(stored)}, duplicates {duplicates}, missing {len(missing)}")
    assert not missing
