"""``bfctl serve`` with consumers, stopped by SIGTERM at each stage of its life: while the
supervisor builds GLOBAL dependencies (before any worker exists), while the workers set their
consumers up, and while a handler refuses to stop (the worker's last resort ends it)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import EXIT_TIMEOUT, Server, _pump, wait_until, write

from bfctl.runtime import stopping


@contextlib.contextmanager
def launched(args: list[str], cwd: Path, env: dict[str, str]) -> Iterator[Server]:
    """``bfctl serve <args>`` started, not waited for (these tests stop it before it serves), in a
    session of its own: whatever it leaves behind is killed with it, never left consuming."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bfctl", "serve", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
    reader.start()
    server = Server(process, "", "", [], lines)
    try:
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=EXIT_TIMEOUT)
        reader.join(timeout=EXIT_TIMEOUT)
        while not lines.empty():
            if (line := lines.get_nowait()) is not None:
                server.lines.append(line)


@contextlib.contextmanager
def gate(path: Path) -> Iterator[Callable[[], None]]:
    """A FIFO the flow's code reads to its end: it ends when the test calls what this yields
    (the test's end is the only writer), so the flow waits exactly as long as the test wants."""
    os.mkfifo(path)
    fd = os.open(path, os.O_RDWR)  # a writer from now on: the flow's open() never blocks
    opened = [fd]

    def release() -> None:
        os.close(opened.pop())

    try:
        yield release
    finally:
        if opened:
            release()


def test_a_stop_signal_sent_to_a_worker_before_its_handler_is_installed_waits_for_that_handler() -> None:
    """The window between a worker's fork and its handler: the default action would end it."""
    forked_r, forked_w = os.pipe()
    go_r, go_w = os.pipe()
    got_r, got_w = os.pipe()
    with stopping.held():  # as the supervisor forks
        pid = os.fork()
        if pid == 0:  # only os calls here: the child of a test process with threads
            try:
                stopping.child_defaults()
                os.write(forked_w, b".")
                os.read(go_r, 1)  # the test sends SIGTERM meanwhile
                stopping.install(lambda signum, _frame: os.write(got_w, bytes([signum])))
            finally:
                os._exit(0)
    try:
        assert select.select([forked_r], [], [], EXIT_TIMEOUT)[0], "the child never started"
        os.kill(pid, signal.SIGTERM)
        os.write(go_w, b".")
        assert select.select([got_r], [], [], EXIT_TIMEOUT)[0], "the handler never ran"
        assert os.read(got_r, 1) == bytes([signal.SIGTERM])
        _, status = os.waitpid(pid, 0)  # it exits as soon as its handler has run
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        for fd in (forked_r, forked_w, go_r, go_w, got_r, got_w):
            os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0  # not ended by SIGTERM's default action


def _rows(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(folder.glob("*.json")) for line in path.read_text().splitlines()]


def _count(server: Server, text: str) -> int:
    """Lines with ``text``. The flows write each line in one ``os.write`` (a whole line, never
    split by another process's), but ``print`` writes its newline apart when output is
    unbuffered (``PYTHONUNBUFFERED``): another process's line may be joined to one of theirs."""
    return sum(text in line for line in server.lines)


ARGS = ["flow.py", "--apply", "--port", "0", "--no-access-log"]

GLOBAL_FLOW = """\
import dataclasses
import os

from buildflow import Flow
from buildflow.dependencies import Scope, dependency
from buildflow.io.local import File, Pulse
from buildflow.types.portable import FileFormat


@dataclasses.dataclass
class Row:
    item: str


@dependency(scope=Scope.GLOBAL)
class Slow:
    def __init__(self) -> None:
        with open("gate", "rb") as gate:
            os.write(1, b"building\\n")
            gate.read()


app = Flow()


@app.consumer(Pulse([b"a"], 0), File("out/rows.json", FileFormat.JSON), num_replicas=2)
def handle(item: bytes, slow: Slow) -> Row:
    os.write(1, b"pulled\\n")
    return Row(item.decode())
"""


def test_sigterm_while_global_dependencies_are_built_starts_no_worker_and_exits_0(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    write(tmp_path / "flow.py", GLOBAL_FLOW)

    with gate(tmp_path / "gate") as release, launched(ARGS, tmp_path, bfctl_env) as server:
        server.wait_for(lambda line: "building" in line)
        server.process.send_signal(signal.SIGTERM)
        release()
        code = server.process.wait(timeout=EXIT_TIMEOUT)

    assert code == 0, server.output
    assert _count(server, "pulled") == 0, server.output
    assert _count(server, "Serving") == 0, server.output


SETUP_FLOW = """\
import dataclasses
import os

from buildflow import Flow
from buildflow.io.local import File, Pulse
from buildflow.types.portable import FileFormat


@dataclasses.dataclass
class Row:
    item: str


app = Flow()


@app.consumer(Pulse([b"a"], 0), File("out/rows.json", FileFormat.JSON), num_replicas=2)
class Gated:
    def setup(self) -> None:
        with open("gate", "rb") as gate:
            os.write(1, b"setting up\\n")
            gate.read()

    async def process(self, item: bytes) -> Row:
        os.write(1, b"pulled\\n")
        return Row(item.decode())

    def teardown(self) -> None:
        os.write(1, b"torn down\\n")
"""


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_sigterm_while_workers_set_their_consumers_up_pulls_nothing_and_exits_0(
    tmp_path: Path, bfctl_env: dict[str, str], loop: str
) -> None:
    write(tmp_path / "flow.py", SETUP_FLOW)

    with gate(tmp_path / "gate") as release, launched([*ARGS, "--loop", loop], tmp_path, bfctl_env) as server:
        server.wait_for(lambda line: "setting up" in line, count=2)
        server.process.send_signal(signal.SIGTERM)
        server.wait_for(lambda line: "SIGTERM received: stopping" in line, count=2)
        release()
        code = server.process.wait(timeout=EXIT_TIMEOUT)

    assert code == 0, server.output
    assert _count(server, "pulled") == 0, server.output
    assert _count(server, "torn down") == 2, server.output


STUCK_FLOW = """\
import asyncio
import dataclasses
import os

from buildflow import Flow
from buildflow.io.local import File, Pulse
from buildflow.types.portable import FileFormat


@dataclasses.dataclass
class Row:
    item: str


app = Flow()


@app.consumer(Pulse([b"a"], 0), File("out/rows.json", FileFormat.JSON), num_replicas={replicas})
async def stuck(item: bytes) -> Row:
    os.write(1, b"handling\\n")
    while True:  # cancelled at the end of the grace period, it carries on
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass
"""


@pytest.mark.parametrize("replicas", [1, 2], ids=["in-process", "forked"])
def test_a_worker_whose_handler_ignores_cancellation_ends_itself_after_grace_and_margin(
    tmp_path: Path, bfctl_env: dict[str, str], replicas: int
) -> None:
    write(tmp_path / "flow.py", STUCK_FLOW.format(replicas=replicas))
    grace = 0.5

    with launched([*ARGS, "--grace", str(grace)], tmp_path, bfctl_env) as server:
        server.wait_for(lambda line: "handling" in line, count=replicas)
        code = server.stop()

    assert code == 1, server.output
    assert _count(server, f"still stopping {grace + stopping.MARGIN:.1f} s after it was told to") == replicas


ORPHAN_FLOW = """\
import dataclasses
import os
from pathlib import Path

from buildflow import Flow
from buildflow.io.local import File, Pulse
from buildflow.types.portable import FileFormat


@dataclasses.dataclass
class Row:
    worker: int
    n: int


app = Flow()


@app.consumer(Pulse([b"a"], 0), File("out/rows.json", FileFormat.JSON), num_replicas=2)
class Counted:
    def setup(self) -> None:
        self.n = 0
        self.returned = open(f"returned-{os.getpid()}.txt", "a")

    async def process(self, item: bytes) -> Row:
        self.n += 1
        self.returned.write(f"{self.n}\\n")
        self.returned.flush()
        return Row(os.getpid(), self.n)

    def teardown(self) -> None:
        Path(f"torn-down-{os.getpid()}").touch()
"""


def test_workers_whose_supervisor_is_killed_stop_as_sigterm_stops_them(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    write(tmp_path / "flow.py", ORPHAN_FLOW)

    def both_consuming() -> bool:
        """both workers returned 10 items"""
        return sum(len(f.read_text().split()) >= 10 for f in tmp_path.glob("returned-*.txt")) == 2

    with launched(ARGS, tmp_path, bfctl_env) as server:
        wait_until(both_consuming)
        server.process.kill()  # SIGKILL: it cannot tell its workers
        server.process.wait(timeout=EXIT_TIMEOUT)
        deadline = time.monotonic() + EXIT_TIMEOUT
        try:  # the output ends once no worker holds it: both have exited
            while (line := server.pending.get(timeout=max(0.0, deadline - time.monotonic()))) is not None:
                server.lines.append(line)
        except queue.Empty:
            pytest.fail(f"a worker still runs {EXIT_TIMEOUT}s after its supervisor was killed:\n{server.output}")

    workers = {int(f.stem.split("-")[1]) for f in tmp_path.glob("returned-*.txt")}
    assert {int(f.name.split("-")[2]) for f in tmp_path.glob("torn-down-*")} == workers, server.output
    returned = {(pid, int(n)) for pid in workers for n in (tmp_path / f"returned-{pid}.txt").read_text().split()}
    stored = {(r["worker"], r["n"]) for r in _rows(tmp_path / "out")}
    assert returned == stored  # every item a handler returned was written before the worker went
