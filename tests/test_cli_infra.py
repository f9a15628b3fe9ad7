"""``bfctl plan | apply | serve | destroy`` on the notes example, as a user runs them:
real subprocesses, a real embedded PostgreSQL, real HTTP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support import REPO_ROOT, run_bfctl, serving, write

PASSWORD = "s3cret"


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    project = tmp_path / "notes"
    shutil.copytree(REPO_ROOT / "examples" / "notes", project, ignore=shutil.ignore_patterns(".buildflow"))
    return project


def _instance_server(project: Path):
    from bfctl.providers.local.postgres import EmbeddedPostgres
    from bfctl.providers.state import StateStore

    state = StateStore(project, "local", "dev").load()
    record = state.resources["my-project:notes-db"]
    return EmbeddedPostgres(project / record.private["directory"]), record.private["port"]


def test_notes_cycle(notes: Path, bfctl_env: dict[str, str]) -> None:
    transcript: list[str] = []

    def bfctl(*args: str) -> tuple[int, str]:
        code, out = run_bfctl(list(args), notes, bfctl_env)
        transcript.append(out)
        return code, out

    code, out = bfctl("plan", "--detailed-exitcode")
    assert code == 2, out
    assert "Plan: 3 to create, 1 to update, 0 to replace, 0 to delete, 0 unchanged." in out
    assert "password: (secret)" in out

    code, out = bfctl("plan", "--json")
    plan = json.loads(out)
    assert code == 0 and plan["summary"]["create"] == 3
    user = next(r for r in plan["resources"] if r["resource_type"] == "gcp.sql.User")
    assert {c["name"]: c["new"] for c in user["changes"]}["password"] == "(secret)"

    code, out = bfctl("apply")  # no terminal, no --yes
    assert code == 1 and "needs confirmation" in out and "--yes" in out
    assert bfctl("plan", "--detailed-exitcode")[0] == 2  # nothing was made

    code, out = bfctl("apply", "--yes")
    assert code == 0, out
    assert "Apply complete: 4 resource(s) changed." in out
    assert "✓ created my-project:notes-db " in out and "port = " in out

    code, out = bfctl("apply", "--yes")
    assert code == 0 and "No changes" in out  # applying twice changes nothing
    code, out = bfctl("plan", "--detailed-exitcode")
    assert code == 0 and "0 to create" in out and "3 unchanged" in out

    write(notes / "v14.py", (notes / "main.py").read_text().replace("POSTGRES_15", "POSTGRES_14"))
    code, out = bfctl("plan", "v14.py:app", "--detailed-exitcode")
    assert code == 2 and "replace" in out and "POSTGRES_15 → POSTGRES_14  (forces replace)" in out

    with serving(["--port", "0", "--no-access-log"], notes, bfctl_env) as server:
        status, body = server.call("POST", "/notes", b'{"title": "first", "body": "kept"}')
        assert status == 200 and json.loads(body)["title"] == "first"
        assert server.call("POST", "/notes", b'{"body": "no title"}')[0] == 422
        assert server.stop() == 0
    transcript.append(server.output)

    with serving(["--port", "0", "--no-access-log"], notes, bfctl_env) as server:
        status, body = server.call("GET", "/notes")
        assert status == 200 and [n["title"] for n in json.loads(body)] == ["first"]  # survived the restart

        database, port = _instance_server(notes)
        database.stop()
        status, body = server.call("GET", "/notes")
        assert status == 503 and "unavailable" in json.loads(body)["detail"]
        database.start(port)
        status, body = server.call("GET", "/notes")
        assert status == 200 and len(json.loads(body)) == 1  # recovered without a restart

        note_id = json.loads(body)[0]["id"]
        assert server.call("DELETE", f"/notes/{note_id}")[0] == 200
        assert server.call("GET", f"/notes/{note_id}")[0] == 404
        assert server.stop() == 0
    transcript.append(server.output)

    code, out = bfctl("destroy")
    assert code == 1 and "needs confirmation" in out
    code, out = bfctl("destroy", "--yes")
    assert code == 0 and "Destroy complete: 3 resource(s) deleted." in out
    assert not any((notes / ".buildflow" / "local").rglob("PG_VERSION"))
    assert bfctl("plan", "--detailed-exitcode")[0] == 2

    for text in transcript:
        assert PASSWORD not in text
    for path in (notes / ".buildflow").rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_serve_refuses_a_flow_that_was_never_applied(notes: Path, bfctl_env: dict[str, str]) -> None:
    code, out = run_bfctl(["serve", "--port", "0"], notes, bfctl_env)
    assert code == 1
    assert "not applied on the local target" in out and "bfctl apply" in out


def test_serve_apply_does_both(notes: Path, bfctl_env: dict[str, str]) -> None:
    try:
        with serving(["--apply", "--port", "0", "--no-access-log"], notes, bfctl_env) as server:
            assert server.call("GET", "/notes") == (200, "[]")
            assert server.stop() == 0
        assert "Apply complete" in server.output
    finally:
        assert run_bfctl(["destroy", "--yes"], notes, bfctl_env)[0] == 0


def test_concurrent_apply_is_refused_by_the_lock(notes: Path, bfctl_env: dict[str, str]) -> None:
    from bfctl.providers import get_provider

    with get_provider("local", notes, "dev").locked("bfctl apply (held by the test)"):
        code, out = run_bfctl(["apply", "--yes"], notes, bfctl_env)
    assert code == 1
    assert "held by the test" in out and "lock" in out.lower()


def test_mysql_is_refused_on_the_local_target(notes: Path, bfctl_env: dict[str, str]) -> None:
    write(notes / "mysql.py", (notes / "main.py").read_text().replace("POSTGRES_15", "MYSQL_8_0"))
    code, out = run_bfctl(["plan", "mysql.py:app"], notes, bfctl_env)
    assert code == 1
    assert "MYSQL_8_0" in out and "PostgreSQL" in out and "Traceback" not in out


def test_invalid_instance_name_is_a_clear_error(notes: Path, bfctl_env: dict[str, str]) -> None:
    write(notes / "bad.py", (notes / "main.py").read_text().replace('"notes-db"', '"Notes_DB"'))
    code, out = run_bfctl(["plan", "bad.py:app"], notes, bfctl_env)
    assert code == 1
    assert "Notes_DB" in out and "lowercase" in out


def test_the_unmanaged_instance_of_a_managed_database_is_made_locally(notes: Path, bfctl_env: dict[str, str]) -> None:
    write(
        notes / "orphan.py",
        (notes / "main.py").read_text().replace("app.manage(instance, database)", "app.manage(database)"),
    )
    code, out = run_bfctl(["plan", "orphan.py:app"], notes, bfctl_env)
    assert code == 0 and "create    gcp.sql.DatabaseInstance  my-project:notes-db" in out  # made locally: it is used


MIGRATION = '''

from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.dependencies.sqlalchemy import engine


@dependency(Scope.GLOBAL)
class Migration:
    """Runs once before the workers start; logs in with a password the database does not know."""

    def __init__(self, outputs: ResourceOutputs) -> None:
        with engine(outputs, database, "notes", "not-the-password").begin() as conn:
            conn.execute(text("select 1"))


@service.endpoint("/migrated", method="GET")
def migrated(done: Migration) -> bool:
    return True
'''


def test_wrong_database_password_at_startup_is_one_line_and_user_frames(notes: Path, bfctl_env: dict[str, str]) -> None:
    main = (notes / "main.py").read_text()
    flow = write(
        notes / "migrating.py", main.replace('if __name__ == "__main__":', MIGRATION + '\nif __name__ == "__main__":')
    )
    try:
        assert run_bfctl(["apply", "--yes"], notes, bfctl_env)[0] == 0

        code, out = run_bfctl(["serve", "migrating.py", "--port", "0"], notes, bfctl_env)

        assert code == 1, out
        headline = out.splitlines()[0]
        assert headline.startswith("Error: dependency `Migration` (GLOBAL) failed at start-up: OperationalError: "), out
        assert 'password authentication failed for user "notes"' in headline
        frames = [line.strip() for line in out.splitlines() if line.strip().startswith('File "')]
        assert frames == [f'File "{flow}", line {_line_of(flow, "engine(outputs")}, in __init__'], out
        assert "site-packages" not in out and "/sqlalchemy/" not in out
        assert len(out.splitlines()) < 10, out

        code, out = run_bfctl(["serve", "migrating.py", "--port", "0"], notes, {**bfctl_env, "BFCTL_DEBUG": "1"})

        assert code == 1
        assert "/sqlalchemy/engine/" in out and "psycopg.OperationalError" in out  # every frame
    finally:
        assert run_bfctl(["destroy", "--yes"], notes, bfctl_env)[0] == 0


def _line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


BUCKETS = """
from buildflow import Flow
from buildflow.io.gcp import GCSBucket

app = Flow()
app.manage(*[GCSBucket("my-project", name) for name in NAMES])
"""
STATE = Path(".buildflow/state/local-dev.json")
BACKUP = Path(".buildflow/state/local-dev.json.bak")


def test_state_keeps_its_previous_version_and_an_unreadable_one_says_how_to_recover(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    """Buckets (folders on the local target) keep this quick: no server to start."""
    write(tmp_path / "one.py", BUCKETS.replace("NAMES", '["first"]'))
    write(tmp_path / "two.py", BUCKETS.replace("NAMES", '["first", "second"]'))

    assert run_bfctl(["apply", "one.py", "--yes"], tmp_path, bfctl_env)[0] == 0
    assert not (tmp_path / BACKUP).exists()  # nothing was replaced yet
    first = (tmp_path / STATE).read_bytes()
    assert run_bfctl(["apply", "two.py", "--yes"], tmp_path, bfctl_env)[0] == 0

    assert (tmp_path / BACKUP).read_bytes() == first  # the version the second apply replaced
    assert (tmp_path / BACKUP).stat().st_mode & 0o777 == 0o600
    current = json.loads((tmp_path / STATE).read_text())
    assert current["serial"] == json.loads(first)["serial"] + 1
    assert [r["resource_id"] for r in current["resources"]] == ["gcs://first", "gcs://second"]

    damaged = {
        "truncated": (first[: len(first) // 2], "invalid JSON at line "),
        "not JSON": (b"<<<<<<< HEAD\n", "invalid JSON at line 1, column 1: Expecting value"),
        "wrong shape": (b'["local", "dev"]\n', "it holds a JSON list, not an object"),
        "empty": (b"", "it is empty"),
    }
    said: dict[str, str] = {}
    for name, (content, reason) in damaged.items():
        (tmp_path / STATE).write_bytes(content)
        every_command = name == "truncated"  # the others: plan alone, to keep the test short
        commands = [["plan", "two.py"], ["apply", "two.py", "--yes"], ["destroy", "--yes"]]
        for command in commands if every_command else commands[:1]:
            code, out = run_bfctl(command, tmp_path, bfctl_env)

            assert code == 1, (name, out)
            assert out.startswith(f"Error: The state file {STATE} cannot be read ({reason}"), (name, out)
            assert (
                f"its previous version, from before the last change, is in {BACKUP}: copy it over the "
                f"state file to recover (`cp {BACKUP} {STATE}`)"
            ) in out, out
            assert len(out.strip().splitlines()) == 1, out  # one sentence, no traceback
            assert out.count("Error") == 1 and "Traceback" not in out and "Decode" not in out, out
            said[name] = out
    assert "it ends early, as a truncated file does" in said["truncated"]

    (tmp_path / BACKUP).replace(tmp_path / STATE)  # the advice, followed
    code, out = run_bfctl(["plan", "two.py", "--detailed-exitcode"], tmp_path, bfctl_env)
    assert code == 2 and "create    gcp.storage.Bucket  gcs://second" in out  # only the last change to redo
    assert run_bfctl(["apply", "two.py", "--yes"], tmp_path, bfctl_env)[0] == 0
    assert run_bfctl(["plan", "two.py", "--detailed-exitcode"], tmp_path, bfctl_env)[0] == 0
