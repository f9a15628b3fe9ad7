"""The real Cloud SQL connector end to end, against a local stand-in of Google's side.

SessionDep and AsyncSessionDep on the gcp target, with the unmodified
``cloud-sql-python-connector``: it calls the stand-in Admin API (``sqladmin_api_endpoint``)
for the instance's settings and an ephemeral client certificate, opens TLS 1.3 to
127.0.0.1:3307 with that certificate, and pg8000 / asyncpg speak PostgreSQL through the
tunnel to an embedded server. (No postponed annotations: the endpoints are annotated with
dependency classes local to the test.)
"""

import datetime
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.cloudsql import PROXY_PORT, CloudSQLStandIn
from google.oauth2.credentials import Credentials
from sqlalchemy import text
from support import cloud_sql_instance

from buildflow import Flow
from buildflow.dependencies.flow_dependencies import FlowCredentials, ResourceOutputs
from buildflow.dependencies.sqlalchemy import AsyncSessionDep, CloudSQLConnectors, SessionDep
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLUser
from providers.local import LocalProvider
from providers.local.postgres import EmbeddedPostgres
from runtime.testing import TestClient

PASSWORD = "tunnel-Pw-0042"
CONNECTION_NAME = "my-project:us-central1:notes-db"
TOKEN = "stand-in-oauth-token"


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


def test_sessions_through_the_real_connector(instance_and_database: Any) -> None:
    if not port_free(PROXY_PORT):
        pytest.fail(f"port {PROXY_PORT}, which the connector always dials, is in use by another program")
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
