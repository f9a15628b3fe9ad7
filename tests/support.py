"""Running ``bfctl`` (or any serving command) as a real subprocess in tests.

The "Serving ... on http://..." line is the only synchronisation: the CLI prints it once the
sockets are bound, so no test sleeps or polls a port.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

from buildflow.io.gcp import CloudSQLInstance
from buildflow.types.gcp import CloudSQLInstanceSettings

if TYPE_CHECKING:
    from aiohttp import web

    from bfctl.runtime.sources.base import Delivery, SourceReader

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Flows that several tests serve or write into their projects.
FLOWS = REPO_ROOT / "tests" / "flows"
#: The smallest flow (tests/flows/hello.py), as a project's ``main.py``.
HELLO_FLOW = (FLOWS / "hello.py").read_text()

STARTUP_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0
SERVING = re.compile(r"^Serving (?P<target>\S+) on (?P<url>http://\S+)$")


@dataclass
class Server:
    """A running ``bfctl serve``; ``lines`` holds its merged output, complete
    once the ``serving`` block has exited."""

    process: subprocess.Popen[str]
    url: str
    target: str
    lines: list[str] = field(default_factory=list)
    #: Output lines not yet read into ``lines`` (None once the output ends).
    pending: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def get(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.status, response.read().decode()

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
        """Any method; error statuses are returned, not raised."""
        request = urllib.request.Request(
            self.url + path, data=body, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self, timeout: float = EXIT_TIMEOUT) -> int:
        """SIGTERM, then wait at most ``timeout`` seconds for the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def wait_for(self, predicate: Callable[[str], bool], count: int = 1) -> None:
        """Read the output until ``count`` lines (counting those read before) satisfy ``predicate``."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while sum(map(predicate, self.lines)) < count:
            try:
                line = self.pending.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"fewer than {count} such lines within {STARTUP_TIMEOUT}s:\n{self.output}")
            if line is None:
                pytest.fail(f"the server's output ended with fewer than {count} such lines:\n{self.output}")
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def _serving_line(line: str) -> re.Match[str] | None:
    """The "Serving" line, printed as it is or as the message of a JSON log line."""
    if line.startswith("{"):
        with contextlib.suppress(ValueError, AttributeError):
            line = json.loads(line).get("message", "")
    return SERVING.match(line)


def _pump(stream: IO[str], sink: queue.Queue[str | None]) -> None:
    for line in stream:
        sink.put(line.rstrip("\n"))
    sink.put(None)


@contextmanager
def serving(args: list[str], cwd: Path, env: dict[str, str], command: list[str] | None = None) -> Iterator[Server]:
    """Start ``bfctl serve <args>`` and yield once it reports its URL.

    A reader thread drains the merged stdout/stderr pipe for the whole run, so
    access logs can never fill the pipe and block the server.
    """
    process = subprocess.Popen(
        [*(command or [sys.executable, "-m", "bfctl", "serve"]), *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no 'Serving' line within {STARTUP_TIMEOUT}s:\n" + "\n".join(seen))
            if line is None:
                pytest.fail("bfctl exited before serving:\n" + "\n".join(seen))
            seen.append(line)
            if match := _serving_line(line):
                break
        server = Server(process, match["url"], match["target"], seen, lines)
        yield server
    finally:
        if process.poll() is None:  # not stopped by the test: stopped as a user would, killed if it hangs
            process.terminate()
            try:
                process.wait(timeout=EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=EXIT_TIMEOUT)
        reader.join(timeout=EXIT_TIMEOUT)
        # A process it started that outlived it holds the pipe; closing it under the blocked reader
        # would hang: the reader ends once that process is ended (conftest names and ends it).
        assert process.stdout is not None
        if not reader.is_alive():
            process.stdout.close()
        while not lines.empty():
            if (line := lines.get_nowait()) is not None:
                seen.append(line)


def traced_get(server: Server, path: str) -> str:
    """GET ``path`` (answered 200) with a W3C ``traceparent`` of a fresh sampled trace, whose
    id the server adopts: the id returned finds the request's trace."""
    trace_id = secrets.token_hex(16)
    header = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    with urllib.request.urlopen(urllib.request.Request(server.url + path, headers=header), timeout=10) as response:
        assert response.status == 200
    return trace_id


def run_bfctl(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run a bfctl command that is expected to end by itself; merged output."""
    result = subprocess.run(
        [sys.executable, "-m", "bfctl", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
        timeout=60,
    )
    return result.returncode, result.stdout


def bfctl_run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a bfctl command that is expected to end by itself; stdout and stderr apart, no input."""
    return subprocess.run(
        [sys.executable, "-m", "bfctl", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=timeout,
    )


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def cloud_sql_instance(
    name: str = "notes-db",
    *,
    project_id: str = "my-project",
    region: str = "us-central1",
    version: str = "POSTGRES_15",
) -> CloudSQLInstance:
    """A small PostgreSQL Cloud SQL instance, as most tests declare one."""
    return CloudSQLInstance(name, project_id, version, CloudSQLInstanceSettings(tier="db-f1-micro"), region)


def read_json(server: Server, path: str, headers: dict[str, str] | None = None) -> Any:
    """A GET's JSON answer (an error status raises ``HTTPError``)."""
    request = urllib.request.Request(server.url + path, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def read_events(response: Any, wanted: dict[str, Any], seconds: float = 20.0) -> list[tuple[str, Any]]:
    """Server-sent events read until one of each kind in ``wanted`` passed its check."""
    deadline = time.monotonic() + seconds
    events: list[tuple[str, Any]] = []
    kind = None
    pending = dict(wanted)
    while pending:
        assert time.monotonic() < deadline, f"not all of {list(pending)} within {seconds}s: {events}"
        line = response.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: ") and kind is not None:
            payload = json.loads(line.removeprefix("data: "))
            events.append((kind, payload))
            if kind in pending and pending[kind](payload):
                del pending[kind]
    return events


def wait_until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait for what a server or a consumer does in the background: ``condition`` checked until
    a deadline (a bound on failure only: it returns as soon as the condition holds)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {seconds}s: {condition.__doc__ or condition}")
        time.sleep(0.05)


def post_numbers(server: Server, numbers: range) -> set[int]:
    """Each number posted as ``{"n": ...}`` to the flow's ``/publish`` collector (a topic's sink)."""
    for n in numbers:
        assert server.call("POST", "/publish", json.dumps({"n": n}).encode()) == (200, '{"success":true}')
    return set(numbers)


def consumed_within(server: Server, numbers: set[int], seconds: float = 30.0) -> set[int]:
    """Which of ``numbers`` the consumer said it consumed (it prints ``consumed <n>``), reading the
    server's output until it said all of them or ``seconds`` passed (a bound on failure only)."""
    deadline = time.monotonic() + seconds
    while True:
        said = {int(line.split()[1]) for line in server.lines if line.startswith("consumed ")}
        if numbers <= said or time.monotonic() > deadline:
            return numbers & said
        with contextlib.suppress(queue.Empty):
            line = server.pending.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                return numbers & said
            server.lines.append(line)


async def take(reader: SourceReader, count: int, seconds: float = 20.0) -> list[Delivery]:
    """Exactly ``count`` deliveries of a source's reader, pulled until a deadline."""
    deadline = time.monotonic() + seconds
    got: list[Delivery] = []
    while len(got) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"{len(got)} of {count} deliveries within {seconds}s: {[d.value for d in got]}")
        got += await reader.pull(count - len(got))
    return got


async def on_loopback(app: web.Application) -> tuple[web.AppRunner, str]:
    """``app`` served on a free loopback port, as a stand-in of a Google API is: its runner (to
    ``cleanup()``) and its root URL."""
    from aiohttp import web

    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def make_project(directory: Path, files: Mapping[str, str]) -> Path:
    """A new project folder holding ``files`` (name: text), as a user's checkout holds them."""
    directory.mkdir()
    for name, text in files.items():
        write(directory / name, text)
    return directory


# -- the journal project, as BuildFlow's templates wrote it -------------------------------------

#: Its database on a Cloud SQL instance (flow source).
JOURNAL_DATABASE = """
instance = CloudSQLInstance(
    instance_name="journal-db",
    project_id="my-project",
    database_version=CloudSQLDatabaseVersion.POSTGRES_15,
    settings=CloudSQLInstanceSettings(tier="db-f1-micro"),
    region="us-central1",
)
database = CloudSQLDatabase(instance=instance, database_name="journal")
"""

#: Its SQLAlchemy model, on ``Base`` (flow source).
ENTRY_MODEL = """

class Entry(Base):
    __tablename__ = "entries"
    id = Column(Integer, primary_key=True)
    title = Column(String, nullable=False)
"""

#: Its endpoints, on ``service`` with sessions from ``DB`` (flow source).
ENTRY_ENDPOINTS = """

@dataclasses.dataclass
class NewEntry:
    title: str


@service.endpoint("/entries", method="POST")
def add(entry: NewEntry, db: DB) -> str:
    with db.session.begin():
        db.session.add(Entry(title=entry.title))
    return "added"


@service.endpoint("/entries", method="GET")
def titles(db: DB) -> list:
    return [e.title for e in db.session.scalars(select(Entry).order_by(Entry.id))]
"""


def journal_project(tmp_path: Path, source: str) -> Path:
    """The journal project with ``source`` as its main.py, found by ``bfctl`` as by ``python main.py``."""
    return make_project(
        tmp_path / "journal", {"main.py": source, "buildflow.yaml": "app: journal\nentry_point: main:app\n"}
    )


def notes_example(directory: Path, migrations: bool = True) -> Path:
    """examples/notes copied into ``directory``; without ``migrations`` its database is made by
    the stack alone (applying migrations on gcp needs the database itself)."""
    directory.mkdir()
    for name in ("main.py", "pyproject.toml"):
        shutil.copy(REPO_ROOT / "examples" / "notes" / name, directory / name)
    main = directory / "main.py"
    if migrations:
        shutil.copytree(REPO_ROOT / "examples" / "notes" / "migrations", directory / "migrations")
    else:
        main.write_text(main.read_text().replace('.options(migrations="migrations")', ""))
    return directory
