"""``bfctl serve`` end to end: a real subprocess, real sockets, real signals.

The "Serving ... on http://..." line is the only synchronisation: the CLI
prints it once the sockets are bound, so no test sleeps or polls a port.
"""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

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

    def get(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.status, response.read().decode()

    def stop(self) -> int:
        """SIGTERM, then wait a bounded time for the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=EXIT_TIMEOUT)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def _pump(stream: IO[str], sink: queue.Queue[str | None]) -> None:
    for line in stream:
        sink.put(line.rstrip("\n"))
    sink.put(None)


@contextmanager
def serving(
    args: list[str], cwd: Path, env: dict[str, str], command: list[str] | None = None
) -> Iterator[Server]:
    """Start ``bfctl serve <args>`` and yield once it reports its URL.

    A reader thread drains the merged stdout/stderr pipe for the whole run, so
    access logs can never fill the pipe and block the server.
    """
    process = subprocess.Popen(
        [*(command or [sys.executable, "-m", "bfctl", "serve"]), *args],
        cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
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
            if match := SERVING.match(line):
                break
        server = Server(process, match["url"], match["target"], seen)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=EXIT_TIMEOUT)
        reader.join(timeout=EXIT_TIMEOUT)
        assert process.stdout is not None
        process.stdout.close()
        while not lines.empty():
            if (line := lines.get_nowait()) is not None:
                seen.append(line)


def run_bfctl(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run a bfctl command that is expected to end by itself; merged output."""
    result = subprocess.run(
        [sys.executable, "-m", "bfctl", *args],
        cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
    )
    return result.returncode, result.stdout


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def test_serve_file_target_then_sigterm_runs_teardown(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    teardown = tmp_path / "teardown.txt"
    env = {**bfctl_env, "BF_TEARDOWN_FILE": str(teardown)}

    with serving(["tests/flows/lifecycle.py:app", "--port", "0"], REPO_ROOT, env) as server:
        assert server.target == "tests/flows/lifecycle.py:app"
        assert not server.url.endswith(":0")
        bob = server.get("/bob")
        sally = server.get("/sally")
        code = server.stop()

    assert code == 0, server.output
    assert bob[0] == 200 and "bob x" in bob[1]
    assert sally[0] == 200 and "sally" in sally[1]
    assert re.search(rf"GET\s+{re.escape(server.url)}/bob$", server.output, re.M), server.output
    assert re.search(rf"GET\s+{re.escape(server.url)}/sally$", server.output, re.M), server.output
    assert "teardown" in teardown.read_text(encoding="utf-8")


def test_serve_reads_pyproject_tool_buildflow(bfctl_env: dict[str, str]) -> None:
    with serving(["--port", "0"], REPO_ROOT / "examples" / "hello", bfctl_env) as server:
        bob = server.get("/bob")
        sally = server.get("/sally")
        code = server.stop()

    assert code == 0, server.output
    assert server.target == "main:app"
    assert bob[0] == 200 and "HELLO! BOB!" in bob[1]
    assert sally[0] == 200 and "HELLO! SALLY!" in sally[1]


def test_serve_reads_buildflow_yaml_entry_point(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    write(
        tmp_path / "svc.py",
        """\
        from buildflow import Flow

        api = Flow()
        service = api.service()

        @service.endpoint("/ping", method="GET")
        def ping():
            return "pong"
        """,
    )
    write(tmp_path / "buildflow.yaml", "project: svc\nentry_point: svc:api\n")

    with serving(["--port", "0"], tmp_path, bfctl_env) as server:
        ping = server.get("/ping")
        code = server.stop()

    assert code == 0, server.output
    assert server.target == "svc:api"
    assert ping[0] == 200 and "pong" in ping[1]


def test_import_error_shows_only_user_frames(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "broken.py", "from buildflow import Flow\n\nimport not_installed_anywhere\n")

    code, output = run_bfctl(["serve", "broken.py"], tmp_path, bfctl_env)

    assert code == 1, output
    assert output.startswith("Error: importing ")
    assert 'broken.py", line 3, in <module>' in output
    assert "ModuleNotFoundError: No module named 'not_installed_anywhere'" in output
    assert "importlib" not in output
    assert "bfctl/loader.py" not in output
    assert "bfctl/cli.py" not in output


def test_syntax_error_shows_line_and_caret(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "typo.py", "app = Flow(\n")

    code, output = run_bfctl(["serve", "typo:app"], tmp_path, bfctl_env)

    assert code == 1, output
    assert 'typo.py", line 1' in output
    assert "^" in output and "SyntaxError" in output
    assert "importlib" not in output


def test_missing_attribute_lists_flow_objects(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "flows.py", "from buildflow import Flow\n\napp2 = Flow()\n")

    code, output = run_bfctl(["serve", "flows"], tmp_path, bfctl_env)

    assert code == 1, output
    assert output.strip() == (
        "Error: module `flows` has no attribute `app`. Flow objects in it: app2"
    )


def test_attribute_that_is_not_a_flow(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "flows.py", "def app():\n    pass\n")

    code, output = run_bfctl(["serve", "flows:app"], tmp_path, bfctl_env)

    assert code == 1, output
    assert output.strip() == "Error: `flows:app` is a function, not a buildflow.Flow."


def test_module_not_found(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    code, output = run_bfctl(["serve", "nowhere:app"], tmp_path, bfctl_env)

    assert code == 1, output
    assert "no module named `nowhere`" in output
    assert str(tmp_path) in output
    assert "Traceback" not in output


def test_no_target_and_no_config(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    code, output = run_bfctl(["serve"], tmp_path, bfctl_env)

    assert code == 1, output
    assert "no flow to serve" in output
    assert "pyproject.toml with [tool.buildflow] app" in output
    assert "buildflow.yaml with entry_point" in output
    assert "Traceback" not in output


def test_port_in_use_is_a_startup_error(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    env = {**bfctl_env, "BF_TEARDOWN_FILE": str(tmp_path / "teardown.txt")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        code, output = run_bfctl(
            ["serve", "tests/flows/lifecycle.py", "--port", str(port)], REPO_ROOT, env
        )

    assert code == 1, output
    assert output.startswith("Error: ") and str(port) in output
    assert "Traceback" not in output


UNEXPECTED = """
import sys
import bfctl.loader
def explode(*args, **kwargs):
    raise RuntimeError("kaboom")
bfctl.loader.load_flow = explode
sys.argv = ["bfctl", "serve", "anything:app"]
import bfctl.cli
bfctl.cli.main()
"""


@pytest.mark.parametrize("debug", [False, True])
def test_unexpected_errors_never_show_a_bare_traceback(
    tmp_path: Path, bfctl_env: dict[str, str], debug: bool
) -> None:
    env = {**bfctl_env, "BFCTL_DEBUG": "1"} if debug else bfctl_env
    result = subprocess.run(
        [sys.executable, "-c", UNEXPECTED],
        cwd=tmp_path, env=env, text=True, capture_output=True, timeout=60,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: RuntimeError: kaboom\n")
    if debug:
        assert "Traceback (most recent call last)" in result.stderr
    else:
        assert "Traceback" not in result.stderr
        assert "run with BFCTL_DEBUG=1 for the traceback" in result.stderr


WORKERS_FLOW = """
    import os
    from buildflow import Flow
    from buildflow.dependencies import Scope, dependency

    @dependency(Scope.GLOBAL)
    class Model:
        def __init__(self):
            self.pid = os.getpid()

    @dependency(Scope.REPLICA)
    class PerWorker:
        def __init__(self, model: Model):
            self.pid = os.getpid()
            self.model = model

    app = Flow()
    service = app.service(num_replicas=2)

    @service.endpoint("/pids")
    def pids(w: PerWorker):
        return {"worker": os.getpid(), "replica": w.pid, "global": w.model.pid}

    if __name__ == "__main__":
        app.run(serve_port=0)
"""


def test_workers_share_the_port_global_built_once_replica_per_worker(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    """``num_replicas=2`` in the flow gives two workers when --workers is not set."""
    write(tmp_path / "workers.py", WORKERS_FLOW)
    import json

    with serving(["workers.py", "--port", "0", "--no-access-log"], tmp_path, bfctl_env) as server:
        seen = []
        for _ in range(200):  # new connection each time: the kernel spreads them over the workers
            seen.append(json.loads(server.get("/pids")[1]))
            if len({s["worker"] for s in seen}) == 2:
                break
        code = server.stop()
    assert code == 0, server.output
    assert len({s["worker"] for s in seen}) == 2
    assert all(s["replica"] == s["worker"] for s in seen)  # built in each worker
    assert {s["global"] for s in seen} == {server.process.pid}  # built once, in the parent


def test_python_main_py_serves_through_app_run(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", WORKERS_FLOW.replace("num_replicas=2", ""))
    with serving([], tmp_path, bfctl_env, command=[sys.executable, "main.py"]) as server:
        status, body = server.get("/pids")
        code = server.stop()
    assert status == 200 and "worker" in body
    assert code == 0, server.output
