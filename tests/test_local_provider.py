"""Providers: the plan model, state and lock, and the local target on a real embedded PostgreSQL."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pg8000.native
import pytest

from bfctl.providers import ApplyError, StalePlanError, StateLockedError, UnsupportedPrimitiveError
from bfctl.providers.local import LocalProvider
from bfctl.providers.local import sql as local_sql
from bfctl.providers.local.postgres import EmbeddedPostgres
from bfctl.providers.lock import LockInfo, StateLock
from bfctl.providers.plan import diff, steps
from bfctl.providers.state import ResourceState, State, StateStore
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance, CloudSQLUser
from buildflow.io.primitive import Primitive
from buildflow.storage import durable
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "pl41n-Secret-Value-42"


def declare(
    version: str = CloudSQLDatabaseVersion.POSTGRES_15, password: str = PASSWORD
) -> tuple[CloudSQLInstance, CloudSQLDatabase, CloudSQLUser]:
    instance = CloudSQLInstance(
        instance_name="notes-db",
        project_id="my-project",
        region="us-central1",
        database_version=version,
        settings=CloudSQLInstanceSettings(tier="db-f1-micro"),
    )
    return instance, CloudSQLDatabase("notes", instance), CloudSQLUser("notes", password, instance)


def connect(provider: LocalProvider, password: str = PASSWORD) -> pg8000.native.Connection:
    db = provider.outputs()["my-project:notes-db.notes"]
    return pg8000.native.Connection(
        "notes", host=db["host"], port=db["port"], database=db["database"], password=password
    )


def server_of(provider: LocalProvider) -> EmbeddedPostgres:
    return EmbeddedPostgres(provider.root / "my-project_notes-db")


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[LocalProvider]:
    p = LocalProvider(tmp_path, "dev")
    yield p
    for directory in (tmp_path / ".buildflow" / "local").glob("*/*"):
        EmbeddedPostgres(directory).stop()


# -- plan model ---------------------------------------------------------------------------------
def record(primitive: Primitive, **properties: object) -> ResourceState:
    return ResourceState(
        primitive.primitive_id(),
        primitive.resource_type,
        {**primitive.desired_properties(), **properties},
        sorted(primitive.secret_properties),
        [p.primitive_id() for p in primitive.parents()],
    )


def test_diff_actions_and_step_order() -> None:
    instance, database, user = declare()
    orphan = CloudSQLDatabase("old", instance)
    recorded = {r.resource_id: r for r in (record(instance), record(database), record(orphan))}
    plan = diff("local", "dev", [(p, p.desired_properties()) for p in (instance, database, user)], recorded)
    assert [(c.resource_id, c.action) for c in plan.changes] == [
        ("my-project:notes-db.old", "delete"),
        ("my-project:notes-db", "noop"),
        ("my-project:notes-db.notes", "noop"),
        ("my-project:notes-db/users/notes", "create"),
    ]
    new_instance, new_database, _ = declare(CloudSQLDatabaseVersion.POSTGRES_16)
    recorded = {r.resource_id: r for r in (record(instance), record(database))}
    plan = diff("local", "dev", [(p, p.desired_properties()) for p in (new_instance, new_database)], recorded)
    assert [c.action for c in plan.changes] == ["replace", "replace"]
    assert plan.changes[0].changes[0].name == "database_version" and plan.changes[0].changes[0].forces_replace
    assert plan.changes[1].reason == "my-project:notes-db is replaced"
    assert [(s, c.resource_id) for s, c in steps(plan)] == [
        ("delete", "my-project:notes-db.notes"),
        ("delete", "my-project:notes-db"),
        ("create", "my-project:notes-db"),
        ("create", "my-project:notes-db.notes"),
    ]


def test_plan_json_and_repr_mask_secrets() -> None:
    *_, user = declare()
    old = record(user, password="SCRAM-SHA-256$4096:c2FsdA==$eA==:eQ==")
    plan = diff("local", "dev", [(user, user.desired_properties())], {old.resource_id: old})
    assert plan.changes[0].action == "update" and plan.has_changes
    text = plan.to_json() + repr(plan)
    assert PASSWORD not in text and "SCRAM" not in text
    assert json.loads(plan.to_json())["resources"][0]["changes"][0] == {
        "name": "password",
        "old": "(secret)",
        "new": "(secret)",
        "secret": True,
        "forces_replace": False,
    }


# -- state and lock -------------------------------------------------------------------------------
def test_state_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = StateStore(tmp_path, "local", "dev")
    state = State("local", "dev")
    store.save(state)
    assert store.path == tmp_path / ".buildflow" / "state" / "local-dev.json"
    assert store.path.stat().st_mode & 0o777 == 0o600
    before = store.path.read_bytes()

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", broken_replace)
        with pytest.raises(OSError, match="disk full"):
            store.save(state)
    assert store.path.read_bytes() == before  # a reader never sees a half-written file
    assert list(store.path.parent.iterdir()) == [store.path]  # no temp file left behind

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(durable, "_fdatasync", fsync)  # a file's data and size
    monkeypatch.setattr(os, "replace", replace)
    store.save(state)
    # the previous file is first kept as local-dev.json.bak, written the same way, then replaced
    assert events == ["fsync file", "replace", "fsync dir"] * 2
    assert json.loads(store.path.read_text())["serial"] == 2
    assert json.loads(store.backup_path.read_text())["serial"] == 1
    assert store.backup_path.stat().st_mode & 0o777 == 0o600


def test_unreadable_state_never_replaces_the_backup(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "local", "dev")
    state = State("local", "dev")
    store.save(state)
    store.save(state)
    good = store.backup_path.read_bytes()
    store.path.write_text('{"version": 1, "target": "local"')  # cut short
    store.save(state)
    assert store.backup_path.read_bytes() == good
    assert json.loads(store.path.read_text())["serial"] == 3


def test_lock_held_by_live_process_is_refused_with_holder(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "local", "dev")
    with store.lock("bfctl apply") as info, pytest.raises(StateLockedError) as caught:
        store.lock("bfctl destroy", break_lock=True).acquire()
    message = str(caught.value)
    assert f"pid {os.getpid()} on {socket.gethostname()}" in message and "`bfctl apply`" in message
    assert "wait for it to finish" in message and not caught.value.stale
    assert caught.value.holder == info
    assert not store.lock_path.exists()  # released


def test_stale_lock_is_detected_and_breakable(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "local", "dev")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    info = LockInfo(int(dead.stdout), socket.gethostname(), "bfctl apply", "2026-01-01T00:00:00+00:00", 1.0, "t")
    store.lock_path.parent.mkdir(parents=True)
    store.lock_path.write_text(json.dumps(info.__dict__))
    with pytest.raises(StateLockedError, match=r"stale lock\); break it with --break-lock") as caught:
        store.lock("bfctl apply").acquire()
    assert caught.value.stale
    with store.lock("bfctl apply", break_lock=True) as mine:
        assert mine.pid == os.getpid()
    # A live pid whose start time differs is a reused pid: stale too.
    reused = LockInfo(os.getpid(), socket.gethostname(), "bfctl apply", "2026-01-01T00:00:00+00:00", 1.0, "t")
    store.lock_path.write_text(json.dumps(reused.__dict__))
    with pytest.raises(StateLockedError) as caught:
        StateLock(store.lock_path, "bfctl plan").acquire()
    assert caught.value.stale


# -- local target -----------------------------------------------------------------------------------
def test_plan_apply_noop_destroy(provider: LocalProvider) -> None:
    primitives = declare()
    plan = provider.plan(primitives)
    assert plan.counts()["create"] == 3
    events: list[tuple[str, str, str]] = []
    outputs = provider.apply(plan, lambda rid, action, status, message="": events.append((rid, action, status)))
    assert events[:2] == [("my-project:notes-db", "create", "started"), ("my-project:notes-db", "create", "done")]
    assert len(events) == 6
    db = outputs["my-project:notes-db.notes"]
    assert db["host"] == "127.0.0.1" and db["database"] == "notes"
    assert db["connection_name"] == "my-project:us-central1:notes-db"
    assert outputs == provider.outputs()

    again = provider.plan(primitives)
    assert not again.has_changes and again.counts()["noop"] == 3
    assert provider.apply(again) == outputs

    conn = connect(provider)  # the declared user can create tables in the declared database
    conn.run("CREATE TABLE note (id serial PRIMARY KEY, body text)")
    conn.run("INSERT INTO note (body) VALUES ('hello')")
    conn.close()

    removed = provider.destroy()
    assert removed.counts()["delete"] == 3
    assert provider.outputs() == {} and not provider.root.exists()
    assert provider.plan(primitives).counts()["create"] == 3


def test_database_version_change_replaces(provider: LocalProvider) -> None:
    provider.apply(provider.plan(declare()))
    conn = connect(provider)
    conn.run("CREATE TABLE marker (x int)")
    conn.close()
    plan = provider.plan(declare(CloudSQLDatabaseVersion.POSTGRES_16))
    assert [c.action for c in plan.changes] == ["replace", "replace", "replace"]
    change = plan.changes[0].changes[0]
    assert (change.name, change.old, change.new, change.forces_replace) == (
        "database_version",
        "POSTGRES_15",
        "POSTGRES_16",
        True,
    )
    provider.apply(plan)
    conn = connect(provider)
    assert conn.run("SELECT to_regclass('marker')") == [[None]]  # a new server
    conn.close()
    assert not provider.plan(declare(CloudSQLDatabaseVersion.POSTGRES_16)).has_changes


def test_failed_step_is_recorded_and_next_apply_finishes(
    provider: LocalProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(conn: object, name: str) -> bool:
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(local_sql, "create_database", fail)
    with pytest.raises(ApplyError, match=r"create of my-project:notes-db\.notes failed: simulated failure"):
        provider.apply(provider.plan(declare()))
    monkeypatch.undo()
    plan = provider.plan(declare())
    assert [c.action for c in plan.changes] == ["noop", "create", "create"]
    provider.apply(plan)
    assert not provider.plan(declare()).has_changes


def test_killed_apply_recovers_and_server_outlives_it(provider: LocalProvider) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.test_local_provider import declare
        from bfctl.providers.local import LocalProvider

        def die_at_database(rid, action, status, message=""):
            if rid.endswith(".notes") and status == "started":
                os.kill(os.getpid(), signal.SIGKILL)

        p = LocalProvider({str(provider.project_dir)!r}, "dev")
        p.apply(p.plan(declare()), die_at_database)
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert killed.returncode == -9, killed.stderr
    assert server_of(provider).running_port() is not None  # the server outlived its apply
    plan = provider.plan(declare())
    assert [c.action for c in plan.changes] == ["noop", "create", "create"]
    with pytest.raises(StateLockedError, match="stale"):
        provider.apply(plan)
    with provider.locked("bfctl apply", break_lock=True):
        provider.apply(plan)
    assert not provider.plan(declare()).has_changes


def test_data_survives_stop_and_restart(provider: LocalProvider) -> None:
    primitives = declare()
    provider.apply(provider.plan(primitives))
    conn = connect(provider)
    conn.run("CREATE TABLE note (body text)")
    conn.run("INSERT INTO note VALUES ('kept')")
    conn.close()
    server = server_of(provider)
    old_port = provider.outputs()["my-project:notes-db"]["port"]
    server.stop()

    plan = provider.plan(primitives)  # a stopped server plans as an update that starts it
    status = [(c.resource_id, [(p.name, p.old, p.new) for p in c.changes]) for c in plan.changes if c.changes]
    assert status == [("my-project:notes-db", [("status", "stopped", "running")])]

    with socket.socket() as squatter:  # its old port was taken meanwhile: it moves
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        outputs = provider.ensure_running()
    new_port = outputs["my-project:notes-db.notes"]["port"]
    assert new_port != old_port and provider.outputs() == outputs
    conn = connect(provider)
    assert conn.run("SELECT body FROM note") == [["kept"]]
    conn.close()
    server.stop()  # a restart with its port free keeps the port, even right after connections closed
    assert provider.ensure_running()["my-project:notes-db"]["port"] == new_port
    assert not provider.plan(primitives).has_changes


def test_refresh_sees_what_was_dropped_behind_its_back(provider: LocalProvider) -> None:
    provider.apply(provider.plan(declare()))
    port = provider.outputs()["my-project:notes-db"]["port"]
    with server_of(provider).admin(port) as admin:
        admin.run('DROP DATABASE "notes"')
        admin.run("ALTER ROLE notes PASSWORD 'changed'")
    plan = provider.plan(declare())
    assert [c.action for c in plan.changes] == ["noop", "create", "update"]
    provider.apply(plan)
    connect(provider).close()


def test_password_change_is_an_update_and_secrets_stay_hidden(provider: LocalProvider) -> None:
    provider.apply(provider.plan(declare()))
    server = server_of(provider)
    with server.admin(provider.outputs()["my-project:notes-db"]["port"]) as admin:
        admin.run("ALTER SYSTEM SET log_statement = 'all'")  # the server logs every statement it gets
        admin.run("SELECT pg_reload_conf()")
    new_password = "An0ther-Plain-Secret"
    plan = provider.plan(declare(password=new_password))
    assert [c.action for c in plan.changes] == ["noop", "noop", "update"]
    outputs = provider.apply(plan)
    connect(provider, new_password).close()
    assert "ALTER ROLE" in server.log.read_text()  # so the log below did see the statement
    places = [
        plan.to_json(),
        repr(plan),
        json.dumps(outputs),
        provider.store.path.read_text(),
        server.log.read_text(),
    ]
    for text in places:
        assert PASSWORD not in text and new_password not in text
    assert provider.store.path.stat().st_mode & 0o777 == 0o600


def test_ensure_user_for_a_session_dependency(provider: LocalProvider) -> None:
    instance = declare()[0]
    provider.apply(provider.plan([instance]))
    assert provider.ensure_user(instance, "app", "app-pass") is True
    assert provider.ensure_user(instance, "app", "app-pass") is False
    assert provider.ensure_user(instance, "app", "new-pass") is True
    port = provider.outputs()["my-project:notes-db"]["port"]
    pg8000.native.Connection("app", host="127.0.0.1", port=port, database="postgres", password="new-pass").close()


def test_unsupported_engine_and_stale_plan(provider: LocalProvider) -> None:
    with pytest.raises(UnsupportedPrimitiveError, match=r"runs PostgreSQL only.*POSTGRES_"):
        provider.plan(declare(CloudSQLDatabaseVersion.MYSQL_8_0))
    instance, database, _ = declare()
    with pytest.raises(ValueError, match=r"not managed: add it to app\.manage"):
        provider.plan([database])
    old = provider.plan([instance])
    provider.apply(provider.plan([instance]))
    with pytest.raises(StalePlanError, match="plan again"):
        provider.apply(old)


def test_apply_and_destroy_change_no_permission_outside_the_project(tmp_path: Path) -> None:
    """A project inside a private (0700) folder, as ``/root`` or a home directory is: the server
    runs (as a service user under root) without any folder above the project being opened."""
    private = tmp_path / "home"
    project = private / "alice" / "notes"
    project.mkdir(parents=True)
    private.chmod(0o700)
    ancestors = [project, *project.parents]
    modes = {path: path.stat().st_mode for path in ancestors}
    provider = LocalProvider(project, "dev")
    try:
        provider.apply(provider.plan(declare()))
        conn = connect(provider)
        assert conn.run("SELECT 1") == [[1]]
        conn.close()
        assert {path: path.stat().st_mode for path in ancestors} == modes
    finally:
        provider.destroy()
    assert {path: path.stat().st_mode for path in ancestors} == modes
    assert not server_of(provider).pgdata.exists()
