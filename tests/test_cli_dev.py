"""``bfctl dev`` end to end: a real supervisor, real file edits, real restarts and signals.

Every wait is on the output ("Serving ... on ...", the error, the waiting notice) with the
deadline of ``Server.wait_for``; no test sleeps.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

from support import REPO_ROOT, SERVING, Server, run_bfctl, serving, wait_until, write

DEV = [sys.executable, "-m", "bfctl", "dev"]

FLOW = """\
from buildflow import Flow

app = Flow()
service = app.service()

@service.endpoint("/answer", method="GET")
def answer() -> str:
    return "{answer}"
"""


def _flow(project: Path, answer: str) -> Path:
    return write(project / "main.py", FLOW.format(answer=answer))


def _serving_lines(server: Server) -> list[str]:
    return [line for line in server.lines if SERVING.match(line)]


def _refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5)
    except urllib.error.URLError as e:
        return isinstance(e.reason, ConnectionRefusedError)
    return False


def test_a_save_serves_the_new_code_on_the_same_port(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    main = _flow(tmp_path, "one")

    with serving(["main.py", "--port", "0"], tmp_path, bfctl_env, command=DEV) as server:
        before = server.get("/answer")
        (tmp_path / "notes.txt").write_text("not code")  # none of these restarts serving
        for ignored in (".buildflow", "__pycache__", ".venv"):
            (tmp_path / ignored).mkdir(exist_ok=True)
            write(tmp_path / ignored / "module.py", "x = 1\n")
        main.write_text(main.read_text().replace('"one"', '"two"'))  # same size, same second: no stale bytecode
        server.wait_for(lambda line: bool(SERVING.match(line)), count=2)
        after = server.get("/answer")
        code = server.stop()

    assert before == (200, '"one"'), server.output
    assert after == (200, '"two"'), server.output
    first, second = _serving_lines(server)
    assert first == second == f"Serving main.py:app on {server.url}"
    assert [line for line in server.lines if "changed" in line] == ["main.py changed: serving again."]
    assert code == 0, server.output
    assert _refused(server.url + "/answer"), "the served flow outlived bfctl dev"


def test_a_syntax_error_is_shown_and_the_next_good_save_serves(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    main = _flow(tmp_path, "one")

    with serving(["--port", "0", "main:app"], tmp_path, bfctl_env, command=DEV) as server:
        main.write_text(main.read_text() + "def broken(:\n")
        server.wait_for(lambda line: line == "Waiting for a change to serve again (the last start exited with code 1).")
        alive = server.process.poll() is None
        _flow(tmp_path, "fixed")
        server.wait_for(lambda line: bool(SERVING.match(line)), count=2)
        after = server.get("/answer")
        code = server.stop()

    assert alive, server.output
    assert "Error: importing main raised SyntaxError" in server.output
    assert 'main.py", line 9' in server.output and "def broken(:" in server.output
    assert "Traceback" not in server.output and "bfctl/" not in server.output, server.output
    assert after == (200, '"fixed"'), server.output
    assert code == 0, server.output


def test_infrastructure_a_save_adds_is_applied_before_serving(
    tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]
) -> None:
    """A bucket (a folder on the local target) keeps this quick: no database to start. Serving
    starts the stack's storage emulator, which outlives bfctl dev until destroyed."""
    main = _flow(tmp_path, "one")
    destroyed.append(tmp_path)

    with serving(["main.py", "--port", "0"], tmp_path, bfctl_env, command=DEV) as server:
        with main.open("a") as source:
            source.write('\nfrom buildflow.io.gcp import GCSBucket\n\napp.manage(GCSBucket("my-project", "added"))\n')
        server.wait_for(lambda line: bool(SERVING.match(line)), count=2)
        code = server.stop()

    applied = server.output.index("Apply complete: 1 resource(s) changed.")
    assert applied < server.output.rindex("Serving main.py:app on"), server.output
    assert (tmp_path / ".buildflow" / "local" / "dev" / "gcs" / "added").is_dir()
    assert code == 0, server.output


def test_ctrl_c_stops_everything_with_exit_0(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    _flow(tmp_path, "one")

    with serving(["main.py", "--port", "0"], tmp_path, bfctl_env, command=DEV) as server:
        server.process.send_signal(signal.SIGINT)
        code = server.process.wait(timeout=30)

    assert code == 0, server.output
    assert "Traceback" not in server.output, server.output
    assert _refused(server.url + "/answer"), "the served flow outlived bfctl dev"


def test_a_killed_dev_takes_the_server_it_started_with_it(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    """Killed outright (kill -9, or its terminal closed: SIGHUP), bfctl dev stops nothing itself;
    the server it started, in a session of its own, must not keep the port and serve on."""
    _flow(tmp_path, "one")

    with serving(["main.py", "--port", "0"], tmp_path, bfctl_env, command=DEV) as server:
        assert server.get("/answer") == (200, '"one"')
        server.process.kill()
        server.process.wait(timeout=30)

        def stopped() -> bool:
            """the server bfctl dev started stopped with it"""
            return _refused(server.url + "/answer")

        wait_until(stopped)


def _postmaster_pid(project: Path) -> str:
    from bfctl.providers.local.postgres import EmbeddedPostgres
    from bfctl.providers.state import StateStore

    record = StateStore(project, "local", "dev").load().resources["my-project:notes-db"]
    pgdata = EmbeddedPostgres(project / record.private["directory"]).pgdata
    return (pgdata / "postmaster.pid").read_text().splitlines()[0]


def test_the_database_keeps_running_with_its_data(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = tmp_path / "notes"
    shutil.copytree(REPO_ROOT / "examples" / "notes", project, ignore=shutil.ignore_patterns(".buildflow"))
    main = project / "main.py"
    try:
        with serving(["--port", "0"], project, bfctl_env, command=DEV) as server:
            created = server.call("POST", "/notes", json.dumps({"title": "kept"}).encode())
            postmaster = _postmaster_pid(project)
            main.write_text(main.read_text().replace("limit: int = 100", "limit: int = 50"))
            server.wait_for(lambda line: bool(SERVING.match(line)), count=2)
            listed = server.call("GET", "/notes")
            code = server.stop()
        assert created[0] == 200, server.output
        assert listed[0] == 200 and [note["title"] for note in json.loads(listed[1])] == ["kept"], server.output
        assert _postmaster_pid(project) == postmaster
        assert code == 0, server.output
    finally:
        run_bfctl(["destroy", "--yes"], project, bfctl_env)
