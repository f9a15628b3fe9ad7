"""SessionDep on the gcp target: engines connect through the Cloud SQL connector.

Google is out of reach, so the connector class is replaced by a stand-in that records how it
is made, called and closed, and opens real connections (pg8000, asyncpg) to an embedded
PostgreSQL standing in for the instance. Everything above it is the real code: the engines,
their ``creator``, the worker's shared ``CloudSQLConnectors`` and its teardown. (No postponed
annotations: the endpoints below are annotated with dependency classes local to each test.)
"""

import asyncio
from pathlib import Path

import pytest
from fakes.connector import (  # noqa: F401 - the fixtures connectors and server
    CONNECTION_NAME,
    PASSWORD,
    StandInConnector,
    connectors,
    declare,
    server,
)
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bfctl.testing import TestClient
from buildflow import Flow
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.dependencies.sqlalchemy import (
    AsyncSessionDep,
    CloudSQLConnectors,
    SessionDep,
    engine,
    session_users,
)
from buildflow.io.gcp import CloudSQLDatabase

RUNNER = "notes-dev-run@my-project.iam"


def gcp_outputs(*databases: CloudSQLDatabase) -> ResourceOutputs:
    return ResourceOutputs(
        {d.primitive_id(): {"connection_name": CONNECTION_NAME, "database": d.database_name} for d in databases}, "gcp"
    )


def test_sessions_connect_through_one_connector_per_worker(connectors: list[StandInConnector]) -> None:  # noqa: F811 - the fixture imported above
    pytest.importorskip("greenlet", reason="SQLAlchemy's asyncio engines need greenlet (sqlalchemy[asyncio])")
    instance, notes, audit = declare()
    app = Flow()
    app.manage(instance, notes, audit)
    Notes = SessionDep(notes, "notes", PASSWORD)
    Audit = SessionDep(audit, "notes", PASSWORD)
    AsyncNotes = AsyncSessionDep(notes, "notes", PASSWORD, ip_type="private")
    service = app.service()

    @service.endpoint("/sync", method="GET")
    def sync_databases(a: Notes, b: Audit) -> list:
        return [s.execute(text("select current_database()")).scalar_one() for s in (a.session, b.session)]

    @service.endpoint("/async", method="GET")
    async def async_user(db: AsyncNotes) -> str:
        return (await db.session.execute(text("select current_user"))).scalar_one()

    with TestClient(app, outputs=gcp_outputs(notes, audit)) as client:
        for _ in range(3):
            assert client.get("/sync").json() == ["notes", "audit"]
            assert client.get("/async").json() == "notes"
        assert all(not c.closed for c in connectors)

    sync, async_ = sorted(connectors, key=lambda c: c.kind != "sync")
    assert [c.kind for c in connectors].count("sync") == 1 and [c.kind for c in connectors].count("async") == 1
    assert sync.options == {} and async_.options == {}  # Application Default Credentials
    # Pooled: each engine opened one connection and reused it.
    assert sorted(sync.calls, key=lambda c: c[2]["db"]) == [
        (
            CONNECTION_NAME,
            "pg8000",
            {"user": "notes", "db": "audit", "ip_type": "public", "enable_iam_auth": False, "password": PASSWORD},
        ),
        (
            CONNECTION_NAME,
            "pg8000",
            {"user": "notes", "db": "notes", "ip_type": "public", "enable_iam_auth": False, "password": PASSWORD},
        ),
    ]
    assert async_.calls == [
        (
            CONNECTION_NAME,
            "asyncpg",
            {"user": "notes", "db": "notes", "ip_type": "private", "enable_iam_auth": False, "password": PASSWORD},
        ),
    ]
    assert sync.closed and async_.closed  # closed when the worker stopped


def test_connectors_are_made_on_first_use_only(connectors: list[StandInConnector]) -> None:  # noqa: F811 - the fixture imported above
    instance, notes, _ = declare()
    app = Flow()
    app.manage(instance, notes)
    Notes = SessionDep(notes, "notes", PASSWORD)
    service = app.service()

    @service.endpoint("/nothing", method="GET")
    def nothing(db: Notes) -> str:  # a session that is never used opens no connection
        return "ok"

    with TestClient(app, outputs=gcp_outputs(notes)) as client:
        assert client.get("/nothing").json() == "ok"
    assert connectors == []


def test_iam_authentication_sends_no_password_and_declares_no_user(connectors: list[StandInConnector]) -> None:  # noqa: F811 - the fixture imported above
    instance, _, _ = declare()
    database = CloudSQLDatabase("iam", instance)
    SessionDep(database, "runner@my-project.iam", "", enable_iam_auth=True)
    assert session_users(database) == []  # an IAM user is not a password user bfctl creates

    shared = CloudSQLConnectors(type("Credentials", (), {"gcp_credentials": None})())
    made = engine(gcp_outputs(database), database, "runner@my-project.iam", "", shared, enable_iam_auth=True)
    with pytest.raises(KeyError, match="password"):
        made.connect()  # the stand-in needs a password; what was asked is what matters
    assert connectors[0].calls == [
        (
            CONNECTION_NAME,
            "pg8000",
            {"user": "runner@my-project.iam", "db": "iam", "ip_type": "public", "enable_iam_auth": True},
        ),
    ]
    asyncio.run(shared.teardown())
    assert connectors[0].closed


def test_on_cloud_run_iam_sessions_log_in_as_the_services_account(
    connectors: list[StandInConnector],  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The token the connector sends on Cloud Run is the service account's, so the user must be the
    one the stack made of it (given in the outputs), not the ``db_user`` written for serving elsewhere."""
    instance, _, _ = declare()
    database = CloudSQLDatabase("iam", instance)
    out = {"connection_name": CONNECTION_NAME, "database": "iam", "iam_user": RUNNER}
    outputs = ResourceOutputs({database.primitive_id(): out}, "gcp")
    shared = CloudSQLConnectors(type("Credentials", (), {"gcp_credentials": None})())
    asked = {"db": "iam", "ip_type": "public", "enable_iam_auth": True}

    for cloud_run, user in ((None, "me@example.com"), ("notes-dev", RUNNER)):
        if cloud_run:
            monkeypatch.setenv("K_SERVICE", cloud_run)
        made = engine(outputs, database, "me@example.com", "", shared, enable_iam_auth=True)
        with pytest.raises(KeyError, match="password"):
            made.connect()  # the stand-in needs a password; what was asked is what matters
        assert connectors[0].calls[-1] == (CONNECTION_NAME, "pg8000", {"user": user, **asked})
    asyncio.run(shared.teardown())


def test_engine_options_are_checked_and_the_local_target_ignores_them(tmp_path: Path) -> None:
    _, notes, _ = declare()
    with pytest.raises(ValueError, match="ip_type must be one of public, private, psc"):
        engine(gcp_outputs(notes), notes, "notes", PASSWORD, ip_type="vpn")
    with pytest.raises(TypeError, match="connectors="):
        engine(gcp_outputs(notes), notes, "notes", PASSWORD)
    local = ResourceOutputs({notes.primitive_id(): {"host": "127.0.0.1", "port": 5, "database": "notes"}})
    made = engine(local, notes, "notes", PASSWORD, ip_type="private", enable_iam_auth=True)
    assert made.url.drivername == "postgresql+psycopg"
    with pytest.raises(OperationalError, match="port 5 failed"):  # psycopg, told nothing of the gcp options
        made.connect()
