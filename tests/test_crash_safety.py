"""A collector killed with SIGKILL under load, several times: every row a client saw
acknowledged is in the sink afterwards (rows are durable before the 2xx is sent)."""

from __future__ import annotations

import contextlib
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


class Progress:
    """Acknowledgements counted as they arrive and clients as they stop: what the test waits on."""

    def __init__(self, clients: int) -> None:
        self._changed = threading.Condition()
        self._acks = 0
        self._running = clients

    def acked(self) -> None:
        with self._changed:
            self._acks += 1
            self._changed.notify_all()

    def stopped(self) -> None:
        with self._changed:
            self._running -= 1
            self._changed.notify_all()

    def wait(self, acks: int) -> None:
        """Until ``acks`` rows are acknowledged, or every client has stopped."""
        with self._changed:
            self._changed.wait_for(lambda: self._acks >= acks or self._running == 0)


def _load(url: str, client: int, start: int, acked: list[int], stop: threading.Event, progress: Progress) -> None:
    try:
        _send(url, client, start, acked, stop, progress)
    finally:
        progress.stopped()


#: The ids of one client (each round starts 100,000 further on): never another client's for 10,000 rounds
IDS_PER_CLIENT = 1_000_000_000


def _send(url: str, client: int, start: int, acked: list[int], stop: threading.Event, progress: Progress) -> None:
    n = start
    while not stop.is_set():
        body = json.dumps({"id": client * IDS_PER_CLIENT + n, "client": client}).encode()
        request = urllib.request.Request(
            url + "/events", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                if r.status == 200:
                    acked.append(client * IDS_PER_CLIENT + n)
                    progress.acked()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return  # the server is gone: not acknowledged
        n += 1


def stored_ids(path: Path) -> list[int]:
    """The ids in one JSON-lines file. Only the end of a file may be torn (a worker killed in
    the middle of an append, a row never acknowledged): an unterminated last line is skipped,
    any other line that is not a whole row fails the test."""
    lines = path.read_bytes().split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    ids = []
    for number, line in enumerate(lines, 1):
        try:
            ids.append(json.loads(line)["id"])
        except (ValueError, KeyError, TypeError):
            raise AssertionError(f"{path.name} line {number} is not a whole row: {line[:200]!r}") from None
    with contextlib.suppress(ValueError, KeyError, TypeError):  # torn by the kill
        ids.append(json.loads(tail)["id"])
    return ids


def test_acknowledged_rows_survive_sigkill(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "flow.py", FLOW)
    acked: list[int] = []
    next_id = [0] * CLIENTS
    for round_ in range(KILLS + 1):
        with serving(["flow.py", "--apply", "--port", "0", "--no-access-log"], tmp_path, bfctl_env) as server:
            stop = threading.Event()
            progress = Progress(CLIENTS)
            before = len(acked)
            mine: list[list[int]] = [[] for _ in range(CLIENTS)]
            threads = [
                threading.Thread(target=_load, args=(server.url, c, next_id[c], mine[c], stop, progress))
                for c in range(CLIENTS)
            ]
            for t in threads:
                t.start()
            progress.wait(ACKS_BEFORE_KILL)
            if round_ < KILLS:
                server.process.send_signal(signal.SIGKILL)
            stop.set()
            for t in threads:
                t.join(timeout=30)
                assert not t.is_alive()
            if round_ == KILLS:
                assert server.stop() == 0
            for c in range(CLIENTS):
                acked.extend(mine[c])
                next_id[c] += 100_000  # ids of later rounds never collide with unacknowledged ones
            assert len(acked) - before >= ACKS_BEFORE_KILL
    stored = [i for path in (tmp_path / "out").glob("events-*.json") for i in stored_ids(path)]
    missing = set(acked) - set(stored)
    duplicates = len(stored) - len(set(stored))
    print(f"acked {len(acked)}, stored {len(stored)}, duplicates {duplicates}, missing {len(missing)}")  # noqa: T201 - -s shows it
    assert not missing
