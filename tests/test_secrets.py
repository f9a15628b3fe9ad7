"""``buildflow.secrets.Secret`` as a password: the declaration, the local target's generated and
environment values (real CLI subprocesses, a real embedded PostgreSQL, real files), and the
gcp plan's warning about literal passwords (with the stand-in `pulumi`)."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from fakes import EVENTS, pulumi_path
from support import REPO_ROOT, bfctl_run, cloud_sql_instance, run_bfctl, serving

from buildflow.io.gcp import CloudSQLDatabase, CloudSQLUser
from buildflow.io.primitive import PrimitiveValidationError
from buildflow.secrets import SECRETS_DIR_ENV, Secret, SecretNotFoundError, reveal

SECRET_NAME = "notes-db-password"
ENV_VAR = "BUILDFLOW_SECRET_NOTES_DB_PASSWORD"
LITERAL = 'db_password="s3cret"'
IGNORED = shutil.ignore_patterns(".buildflow", "__pycache__")


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    """The notes example with its password declared as a Secret."""
    project = tmp_path / "notes"
    shutil.copytree(
        REPO_ROOT / "examples" / "notes", project, ignore=shutil.ignore_patterns(".buildflow", "__pycache__")
    )
    main = project / "main.py"
    source = main.read_text()
    assert LITERAL in source
    main.write_text(
        "from buildflow.secrets import Secret\n" + source.replace(LITERAL, f"db_password=Secret({SECRET_NAME!r})")
    )
    return project


def secret_file(project: Path) -> Path:
    return project / ".buildflow" / "local" / "dev" / "secrets" / SECRET_NAME


def files_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


# -- the declaration ---------------------------------------------------------------------------


def test_env_var_rule_and_explicit_name() -> None:
    assert Secret("notes-db-password").env_var == ENV_VAR
    assert Secret("api_key2").env_var == "BUILDFLOW_SECRET_API_KEY2"
    assert Secret("notes-db-password", env="NOTES_PW").env_var == "NOTES_PW"


@pytest.mark.parametrize("name", ["", "has space", "../escape", "a/b", "x" * 256])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="Secret name"):
        Secret(name)


def test_invalid_env_name_is_refused() -> None:
    with pytest.raises(ValueError, match="environment variable name"):
        Secret("pw", env="1-BAD")


def test_value_is_read_when_asked_env_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv(SECRETS_DIR_ENV, raising=False)
    secret = Secret(SECRET_NAME)  # declared before any value exists: nothing is read here
    with pytest.raises(SecretNotFoundError, match=ENV_VAR):
        secret.value()

    (tmp_path / SECRET_NAME).write_text("from-file\n")
    monkeypatch.setenv(SECRETS_DIR_ENV, str(tmp_path))
    assert secret.value() == "from-file"  # the trailing line break is not part of it
    monkeypatch.setenv(ENV_VAR, "from-env")
    assert secret.value() == "from-env"
    assert reveal(secret) == "from-env" and reveal("literal") == "literal"


def test_missing_value_error_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv(SECRETS_DIR_ENV, str(tmp_path))
    with pytest.raises(SecretNotFoundError) as info:
        Secret(SECRET_NAME).value()
    assert ENV_VAR in str(info.value) and str(tmp_path / SECRET_NAME) in str(info.value)


def test_cloud_sql_user_takes_a_secret_or_a_literal() -> None:
    instance = cloud_sql_instance()
    CloudSQLDatabase(instance=instance, database_name="notes")
    user = CloudSQLUser(user_name="notes", password=Secret(SECRET_NAME), instance=instance)
    assert user.desired_properties()["password"] == Secret(SECRET_NAME)
    assert CloudSQLUser(user_name="notes", password="literal", instance=instance).password == "literal"
    with pytest.raises(PrimitiveValidationError, match=r"non-empty string or a buildflow\.secrets\.Secret"):
        CloudSQLUser(user_name="notes", password=42, instance=instance)  # type: ignore[arg-type]  # the wrong type on purpose


# -- the local target --------------------------------------------------------------------------


def test_generated_once_stable_private_and_never_shown(notes: Path, bfctl_env: dict[str, str], tmp_path: Path) -> None:
    # A directory left in the shell is not where serve looks: it reads what apply generated.
    env = {**{k: v for k, v in bfctl_env.items() if k != ENV_VAR}, SECRETS_DIR_ENV: str(tmp_path)}
    transcript: list[str] = []

    def bfctl(*args: str) -> str:
        code, out = run_bfctl(list(args), notes, env)
        transcript.append(out)
        assert code == (2 if "--detailed-exitcode" in args else 0), out
        return out

    out = bfctl("plan", "--detailed-exitcode")
    assert "password: (secret)" in out and "3 to create" in out
    assert not secret_file(notes).exists()  # a plan makes nothing

    try:
        bfctl("apply", "--yes")
        path = secret_file(notes)
        value = path.read_text()
        assert len(value) >= 40  # 32 random bytes, URL-safe base64
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

        assert "No changes" in bfctl("apply", "--yes")  # the same value: the user is unchanged
        assert path.read_text() == value
        assert "3 unchanged" in bfctl("plan")

        with serving(["--port", "0", "--no-access-log"], notes, env) as server:
            status, body = server.call("POST", "/notes", b'{"title": "kept", "body": "safe"}')
            assert status == 200, body
            assert json.loads(server.call("GET", "/notes")[1])[0]["title"] == "kept"
            assert server.stop() == 0
        transcript.append(server.output)
        assert path.read_text() == value

        for text in transcript:
            assert value not in text
        for file in files_under(notes / ".buildflow"):
            if file != path and "pgdata" not in file.parts:
                assert value.encode() not in file.read_bytes(), file
        state = json.loads((notes / ".buildflow" / "state" / "local-dev.json").read_text())
        user = next(r for r in state["resources"] if r["resource_type"] == "gcp.sql.User")
        assert user["properties"]["password"].startswith("SCRAM-SHA-256$")
    finally:
        assert run_bfctl(["destroy", "--yes"], notes, env)[0] == 0
    assert not secret_file(notes).parent.exists()  # gone with the database it opened


def test_environment_value_wins(notes: Path, bfctl_env: dict[str, str]) -> None:
    value = "given-by-the-environment-7f3a"
    env = {**{k: v for k, v in bfctl_env.items() if k != SECRETS_DIR_ENV}, ENV_VAR: value}
    try:
        code, out = run_bfctl(["apply", "--yes"], notes, env)
        assert code == 0, out
        assert value not in out
        assert not secret_file(notes).exists()  # nothing generated

        import psycopg

        from bfctl.providers.local.net import HOST
        from bfctl.providers.state import StateStore

        port = StateStore(notes, "local", "dev").load().resources["my-project:notes-db"].outputs["port"]
        with psycopg.connect(host=HOST, port=port, dbname="notes", user="notes", password=value) as conn:
            assert conn.execute("select current_user").fetchone() == ("notes",)

        with serving(["--port", "0", "--no-access-log"], notes, env) as server:
            assert server.call("GET", "/notes") == (200, "[]")
            assert server.stop() == 0
        assert value not in server.output

        # Without the variable the Secret would be generated: a different password, so a change.
        unset = {k: v for k, v in env.items() if k != ENV_VAR}
        code, out = run_bfctl(["plan", "--detailed-exitcode"], notes, unset)
        assert code == 2 and "password: (secret) → (secret)" in out
    finally:
        assert run_bfctl(["destroy", "--yes"], notes, env)[0] == 0


def test_literal_password_still_works(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = tmp_path / "literal"
    shutil.copytree(
        REPO_ROOT / "examples" / "notes", project, ignore=shutil.ignore_patterns(".buildflow", "__pycache__")
    )
    try:
        code, out = run_bfctl(["apply", "--yes"], project, bfctl_env)
        assert code == 0, out
        assert not secret_file(project).parent.exists()  # a literal needs no secret store
        with serving(["--port", "0", "--no-access-log"], project, bfctl_env) as server:
            assert server.call("GET", "/notes") == (200, "[]")
            assert server.stop() == 0
    finally:
        assert run_bfctl(["destroy", "--yes"], project, bfctl_env)[0] == 0


# -- gcp plan ----------------------------------------------------------------------------------


def gcp_plan(
    project: Path, bfctl_env: dict[str, str], tmp_path: Path, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in bfctl_env.items() if not k.startswith("PULUMI_") and k != ENV_VAR}
    env.update(
        PATH=pulumi_path(tmp_path / "bin"),
        PULUMI_CONFIG_PASSPHRASE="a passphrase",
        FAKE_PULUMI_LOG=str(tmp_path / "pulumi-calls.jsonl"),
        FAKE_PULUMI_SCENARIO=str(EVENTS / "notes_create.json"),
        **extra,
    )
    return bfctl_run(["plan", "--target", "gcp", "--detailed-exitcode"], project, env)


def test_gcp_plan_warns_about_a_literal_password(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = tmp_path / "literal"
    shutil.copytree(
        REPO_ROOT / "examples" / "notes", project, ignore=shutil.ignore_patterns(".buildflow", "__pycache__")
    )
    result = gcp_plan(project, bfctl_env, tmp_path)
    assert result.returncode == 2, result.stderr
    warning = (
        "Warning: the password of my-project:notes-db/users/notes is a string literal in the code, "
        "so it ships inside the image; use buildflow.secrets.Secret(...) instead."
    )
    assert warning in result.stderr.splitlines()
    assert "Warning" not in result.stdout and "s3cret" not in result.stdout + result.stderr


def test_gcp_plan_with_a_secret(notes: Path, bfctl_env: dict[str, str], tmp_path: Path) -> None:
    # Without a value in the environment the stack generates one at the first apply.
    for extra in ({}, {ENV_VAR: "from-the-environment"}):
        result = gcp_plan(notes, bfctl_env, tmp_path, **extra)
        assert result.returncode == 2, result.stderr
        assert "string literal" not in result.stderr and "Traceback" not in result.stderr
        assert "from-the-environment" not in result.stdout + result.stderr
        assert "password: (secret)" in result.stdout


def test_engines_reveal_the_secret_when_they_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from sqlalchemy import event

    from buildflow.dependencies.flow_dependencies import ResourceOutputs
    from buildflow.dependencies.sqlalchemy import async_engine, engine

    instance = cloud_sql_instance()
    database = CloudSQLDatabase(instance=instance, database_name="notes")
    outputs = ResourceOutputs({database.primitive_id(): {"host": "127.0.0.1", "port": 5432, "database": "notes"}})
    monkeypatch.delenv(SECRETS_DIR_ENV, raising=False)
    monkeypatch.delenv(ENV_VAR, raising=False)
    sync = engine(outputs, database, "notes", Secret(SECRET_NAME))  # building one reads no secret
    made_async = async_engine(outputs, database, "notes", Secret(SECRET_NAME))
    with pytest.raises(SecretNotFoundError, match=ENV_VAR):
        sync.connect()

    class Connecting(Exception):
        """Raised where the driver would connect, once the engine gave it its parameters."""

    given: list[str] = []

    def stop(dialect: object, record: object, cargs: object, cparams: dict[str, str]) -> None:
        given.append(cparams["password"])
        raise Connecting

    async def connect_async() -> None:
        async with made_async.connect():
            pass

    monkeypatch.setenv(ENV_VAR, "revealed")
    for made in (sync, made_async.sync_engine):
        event.listen(made, "do_connect", stop)
    with pytest.raises(Connecting):
        sync.connect()
    with pytest.raises(Connecting):
        asyncio.run(connect_async())
    assert given == ["revealed", "revealed"]
    assert "revealed" not in repr(sync.url)
