"""``bfctl serve`` end to end: a real subprocess, real sockets, real signals.

The "Serving ... on http://..." line is the only synchronisation: the CLI
prints it once the sockets are bound, so no test sleeps or polls a port.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO_ROOT, run_bfctl, serving, write


def test_serve_file_target_then_sigterm_runs_teardown(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
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
    assert re.search(rf"GET\s+{re.escape(server.url)}/bob$", server.output, re.MULTILINE), server.output
    assert re.search(rf"GET\s+{re.escape(server.url)}/sally$", server.output, re.MULTILINE), server.output
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


def test_serve_reads_buildflow_yaml_entry_point(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
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
    assert output.strip() == ("Error: module `flows` has no attribute `app`. Flow objects in it: app2")


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

        code, output = run_bfctl(["serve", "tests/flows/lifecycle.py", "--port", str(port)], REPO_ROOT, env)

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
def test_unexpected_errors_never_show_a_bare_traceback(tmp_path: Path, bfctl_env: dict[str, str], debug: bool) -> None:
    env = {**bfctl_env, "BFCTL_DEBUG": "1"} if debug else bfctl_env
    result = subprocess.run(
        [sys.executable, "-c", UNEXPECTED],
        cwd=tmp_path,
        env=env,
        text=True,
        capture_output=True,
        check=False,
        timeout=60,
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


def test_workers_share_the_port_global_built_once_replica_per_worker(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    """``num_replicas=2`` in the flow gives two workers when --workers is not set."""
    write(tmp_path / "workers.py", WORKERS_FLOW)
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


FAILING_DEPENDENCY_FLOW = """
    import json
    from buildflow import Flow
    from buildflow.dependencies import Scope, dependency

    def read_settings():
        return json.loads("{not json")

    @dependency(Scope.SCOPE_NAME)
    def settings():
        return read_settings()

    app = Flow()
    service = app.service()

    @service.endpoint("/")
    def root(s: settings):
        return s
"""


@pytest.mark.parametrize(("scope", "workers"), [("GLOBAL", "1"), ("GLOBAL", "2"), ("REPLICA", "2")])
def test_failing_dependency_shows_the_cause_and_only_user_frames(
    tmp_path: Path, bfctl_env: dict[str, str], scope: str, workers: str
) -> None:
    """GLOBAL ones fail in the parent (before any fork), REPLICA ones in each forked worker."""
    write(tmp_path / "failing.py", FAILING_DEPENDENCY_FLOW.replace("SCOPE_NAME", scope))
    args = ["serve", "failing.py", "--port", "0", "--workers", workers]

    code, output = run_bfctl(args, tmp_path, bfctl_env)

    assert code == 1, output
    reports = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(reports) == 1, output  # several workers failing alike report once
    assert output.startswith(
        f"Error: dependency `settings` ({scope}) failed at start-up: "
        "JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)\n"
    ), output
    frames = [line.strip() for line in output.splitlines() if line.strip().startswith('File "')]
    assert frames and all(line.startswith(f'File "{tmp_path / "failing.py"}"') for line in frames), output
    assert ", in settings" in output and ", in read_settings" in output
    for noise in ("site-packages", "json/decoder.py", "runtime/", "bfctl/", "aiohttp", "asyncio"):
        assert noise not in output, noise
    assert "BFCTL_DEBUG=1" in output

    code, output = run_bfctl(args, tmp_path, {**bfctl_env, "BFCTL_DEBUG": "1"})

    assert code == 1, output
    assert output.startswith(f"Error: dependency `settings` ({scope}) failed at start-up: JSONDecodeError: ")
    assert "json/decoder.py" in output and "runtime/di/lifecycle.py" in output  # every frame
    assert "json.decoder.JSONDecodeError: Expecting property name" in output
