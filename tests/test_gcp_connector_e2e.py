"""The real Cloud SQL connector end to end, against a local stand-in of Google's side.

SessionDep and AsyncSessionDep on the gcp target, and `bfctl plan|apply|db --target gcp`
running migrations, with the unmodified ``cloud-sql-python-connector``: it calls the stand-in
Admin API (``sqladmin_api_endpoint``) for the instance's settings and an ephemeral client
certificate, opens TLS 1.3 to 127.0.0.1:3307 with that certificate, and pg8000 / asyncpg speak
PostgreSQL through the tunnel to an embedded server. The stand-in `pulumi` plays the engine.
(No postponed annotations: the endpoints are annotated with dependency classes local to the test.)
"""

import datetime
import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fakes import EVENTS, pulumi_path
from fakes.cloudsql import PROXY_PORT, TOKEN, CloudSQLStandIn
from google.oauth2.credentials import Credentials
from revisions import ADD_TAGS, BROKEN
from sqlalchemy import text
from support import REPO_ROOT, cloud_sql_instance, run_bfctl, write

from bfctl.providers.local import LocalProvider
from bfctl.providers.local.postgres import EmbeddedPostgres
from bfctl.testing import TestClient
from buildflow import Flow
from buildflow.dependencies.flow_dependencies import FlowCredentials, ResourceOutputs
from buildflow.dependencies.sqlalchemy import SQLADMIN_ENDPOINT_ENV, AsyncSessionDep, CloudSQLConnectors, SessionDep
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLUser

PASSWORD = "tunnel-Pw-0042"
CONNECTION_NAME = "my-project:us-central1:notes-db"  # the stand-in engine's output for notes-db
IMAGE = "us-central1-docker.pkg.dev/my-project/bfctl/notes@sha256:" + "cd" * 32


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the stand-in binds it
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def instance_and_database(tmp_path: Path) -> Iterator[tuple[CloudSQLDatabase, tuple[str, int]]]:
    instance = cloud_sql_instance("notes-db")
    database = CloudSQLDatabase("notes", instance)
    provider = LocalProvider(tmp_path, "dev")
    provider.apply(provider.plan([instance, database, CloudSQLUser("notes", PASSWORD, instance)]))
    out = provider.outputs()[instance.primitive_id()]
    yield database, (out["host"], out["port"])
    for directory in (tmp_path / ".buildflow" / "local").glob("*/*"):
        EmbeddedPostgres(directory).stop()


def require_proxy_port() -> None:
    if not port_free(PROXY_PORT):
        pytest.fail(f"port {PROXY_PORT}, which the connector always dials, is in use by another program")


def test_sessions_through_the_real_connector(instance_and_database: Any) -> None:
    require_proxy_port()
    database, backend = instance_and_database
    app = Flow()
    app.manage(database.instance, database)
    Notes = SessionDep(database, "notes", PASSWORD)
    AsyncNotes = AsyncSessionDep(database, "notes", PASSWORD)
    service = app.service()

    @service.endpoint("/sync", method="GET")
    def whoami(db: Notes) -> list:
        return list(db.session.execute(text("select current_user, current_database()")).one())

    @service.endpoint("/async", method="GET")
    async def whoami_async(db: AsyncNotes) -> list:
        return list((await db.session.execute(text("select current_user, current_database()"))).one())

    with CloudSQLStandIn(CONNECTION_NAME, "POSTGRES_15", backend) as google:

        class LocalAdminAPI(CloudSQLConnectors):
            def connector_options(self) -> dict[str, Any]:
                return {**super().connector_options(), "sqladmin_api_endpoint": google.endpoint}

        expiry = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(hours=1)
        overrides = {
            FlowCredentials: FlowCredentials(gcp_credentials=Credentials(token=TOKEN, expiry=expiry)),
            CloudSQLConnectors: LocalAdminAPI,
        }
        outputs = ResourceOutputs(
            {database.primitive_id(): {"connection_name": CONNECTION_NAME, "database": "notes"}}, "gcp"
        )
        with TestClient(app, overrides=overrides, outputs=outputs) as client:
            for _ in range(2):
                assert client.get("/sync").json() == ["notes", "notes"]
                assert client.get("/async").json() == ["notes", "notes"]

    prefix = "/sql/v1beta4/projects/my-project/instances/notes-db"
    # One refresh per connector (the sync one and the asyncio one), each: settings + certificate.
    assert sorted(google.api_calls) == sorted(
        2
        * [
            ("GET", f"{prefix}/connectSettings", f"Bearer {TOKEN}"),
            ("POST", f"{prefix}:generateEphemeralCert", f"Bearer {TOKEN}"),
        ]
    )
    # Pooled connections: one tunnel per engine, TLS 1.3, with the ephemeral certificate.
    assert [t["version"] for t in google.tunnels] == ["TLSv1.3", "TLSv1.3"]
    assert all(t["client"] == ((("commonName", "ephemeral"),),) for t in google.tunnels)


def test_gcp_plan_and_apply_run_migrations_from_this_machine(
    instance_and_database: Any, tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    """The notes example on the gcp target: plan lists what is pending (reading the database
    through the connector once it exists), apply migrates between the data resources and the
    service, a failing revision stops apply at the last good one, `bfctl db` reads it too."""
    require_proxy_port()
    _, backend = instance_and_database
    project = tmp_path / "notes"
    shutil.copytree(
        REPO_ROOT / "examples" / "notes", project, ignore=shutil.ignore_patterns(".buildflow", "__pycache__")
    )
    main = project / "main.py"
    main.write_text(main.read_text().replace('db_password="s3cret"', f"db_password={PASSWORD!r}"))

    with CloudSQLStandIn(CONNECTION_NAME, "POSTGRES_15", backend) as google:
        env = {k: v for k, v in bfctl_env.items() if not k.startswith("PULUMI_")}
        env.update(
            PATH=pulumi_path(tmp_path / "bin"),
            PULUMI_CONFIG_PASSPHRASE="correct horse",
            FAKE_PULUMI_SCENARIO=str(EVENTS / "notes_create.json"),
            GOOGLE_APPLICATION_CREDENTIALS=str(google.credentials_file(tmp_path / "key.json")),
            **{SQLADMIN_ENDPOINT_ENV: google.endpoint + "/"},
        )

        def bfctl(*args: str) -> tuple[int, str]:
            return run_bfctl(list(args), project, env)

        code, out = bfctl("plan", "--target", "gcp")
        assert code == 0, out
        assert "buildflow.Migrations  my-project:notes-db.notes/migrations" in out
        assert "(1 pending: 0001 (create the note table))" in out
        assert not google.api_calls  # nothing applied yet: nothing to read

        code, out = bfctl("apply", "--target", "gcp", "--yes", "--no-deploy")
        assert code == 0, out
        assert "✓ updated my-project:notes-db.notes/migrations" in out and "upgraded to 0001 (1 revision(s))" in out
        assert out.index("my-project:notes-db/users/notes") < out.index("notes-db.notes/migrations")

        write(project / "migrations" / "versions" / "0002_add_tags.py", ADD_TAGS)
        write(project / "migrations" / "versions" / "0003_broken.py", BROKEN)
        code, out = bfctl("plan", "--target", "gcp")
        assert "(2 pending: 0002 (add tags to notes), 0003 (a revision that fails))" in out, out
        assert "revision: 0001 → 0003" in out

        code, out = bfctl("apply", "--target", "gcp", "--yes", "--no-deploy")
        assert code == 1, out
        assert "migration 0003 (a revision that fails) of my-project:notes-db.notes failed" in out
        assert "The database stays at revision 0002" in out and "the service was not updated" in out
        assert PASSWORD not in out

        code, out = bfctl("db", "current", "--target", "gcp")
        assert code == 0 and "my-project:notes-db.notes is at revision 0002." in out, out

        # fixed, and deployed with new code: the service gets it only once the database is migrated
        write(project / "migrations" / "versions" / "0003_broken.py", BROKEN.replace("no_such_table", "note"))
        env["FAKE_PULUMI_LOG"] = str(tmp_path / "pulumi-calls.jsonl")
        code, out = bfctl("apply", "--target", "gcp", "--yes", "--image", IMAGE)
        assert code == 0 and "upgraded to 0003 (1 revision(s))" in out, out
        ups = [json.loads(line)["args"][0] for line in Path(env["FAKE_PULUMI_LOG"]).read_text().splitlines()]
        assert [op for op in ups if op in ("preview", "up")] == ["preview", "up", "up"]
        deployed = json.loads((project / ".buildflow" / "state" / "gcp-dev.deployed.json").read_text())
        assert deployed["image"] == IMAGE

    with psycopg.connect(host=backend[0], port=backend[1], user="notes", password=PASSWORD, dbname="notes") as conn:
        columns = {
            row[0]
            for row in conn.execute("select column_name from information_schema.columns where table_name = 'note'")
        }
        assert columns == {"id", "title", "body", "created_at", "tags", "x"}
        assert conn.execute("select version_num from alembic_version").fetchall() == [("0003",)]
    assert google.api_calls and all(auth == f"Bearer {TOKEN}" for _, path, auth in google.api_calls if path != "/token")
    assert google.tunnels and all(t["version"] == "TLSv1.3" for t in google.tunnels)
