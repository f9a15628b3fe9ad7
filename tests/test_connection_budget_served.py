"""The connection budget against a real PostgreSQL with few connections: several ``bfctl serve``
processes standing for several instances of a deployed service, under concurrent load, stay
within ``max_connections`` with the pools the budget chose; what cannot get a connection is a 503
with Retry-After, never a 500."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from support import make_project, run_bfctl, serving

from bfctl.providers.connection_budget import RESERVED, connection_budget
from buildflow.dependencies.sqlalchemy import EnginePool
from buildflow.deployed import POOLS_ENV
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance
from buildflow.types.gcp import CloudSQLInstanceSettings

MAX_CONNECTIONS = 20
INSTANCES = 3
THREADS = 8
REQUESTS = 24  # per instance, all at once

#: Its ``max_connections`` flag is MAX_CONNECTIONS.
FLOW = """
from sqlalchemy import text

from buildflow import Flow
from buildflow.dependencies.sqlalchemy import SessionDepBuilder
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings

instance = CloudSQLInstance(
    instance_name="budget-db",
    project_id="my-project",
    database_version=CloudSQLDatabaseVersion.POSTGRES_15,
    settings=CloudSQLInstanceSettings(
        tier="db-f1-micro", database_flags=[{"name": "max_connections", "value": "MAX_CONNECTIONS"}]
    ),
    region="us-central1",
)
database = CloudSQLDatabase(instance=instance, database_name="app")
DB = SessionDepBuilder(db_primitive=database, db_user="app", db_password="app-pw")
OnePool = SessionDepBuilder(
    db_primitive=database, db_user="app", db_password="app-pw", pool_size=1, max_overflow=0, pool_timeout=0.1
)

app = Flow()
app.manage(instance, database)
service = app.service()


@service.endpoint("/work", method="GET")
def work(db: DB) -> int:
    # a query that keeps its connection for a moment, as real ones do
    return db.session.execute(text("select pg_backend_pid() from pg_sleep(0.05)")).scalar_one()


@service.endpoint("/limit", method="GET")
def limit(db: DB) -> str:
    return db.session.execute(text("show max_connections")).scalar_one()


@service.endpoint("/second-connection", method="GET")
def second_connection(db: OnePool) -> str:
    db.session.execute(text("select 1"))  # holds the pool's only connection
    with db.session.get_bind().connect():  # none comes free within pool_timeout
        return "never"
"""


def budget_env() -> dict[str, str]:
    """The pools the plan would choose for INSTANCES instances of one worker, as the flow declares them."""
    instance = CloudSQLInstance(
        "budget-db",
        "my-project",
        "POSTGRES_15",
        CloudSQLInstanceSettings(
            tier="db-f1-micro", database_flags=[{"name": "max_connections", "value": str(MAX_CONNECTIONS)}]
        ),
        "us-central1",
    )
    database = CloudSQLDatabase(database_name="app", instance=instance)
    pools = [EnginePool(database), EnginePool(database, pool_size=1, max_overflow=0)]
    budget = connection_budget(pools, max_instances=INSTANCES, min_instances=0, workers=1)
    assert budget.max_instances == INSTANCES
    return {POOLS_ENV: json.dumps(budget.pools)}


async def load(urls: list[str]) -> list[tuple[int, str | None, str]]:
    """REQUESTS requests to each of ``urls`` at once: (status, Retry-After, body) of each."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as client:

        async def one(url: str) -> tuple[int, str | None, str]:
            async with client.get(url + "/work") as response:
                return response.status, response.headers.get("Retry-After"), await response.text()

        return await asyncio.gather(*(one(url) for url in urls for _ in range(REQUESTS)))


def test_instances_stay_within_max_connections_under_load(
    tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]
) -> None:
    project = make_project(
        tmp_path / "budget",
        {
            "main.py": FLOW.replace("MAX_CONNECTIONS", str(MAX_CONNECTIONS)),
            "buildflow.yaml": "app: budget\nentry_point: main:app\n",
        },
    )
    destroyed.append(project)
    code, out = run_bfctl(["apply", "--yes"], project, bfctl_env)
    assert code == 0, out

    env = {**bfctl_env, **budget_env()}
    args = ["--port", "0", "--workers", "1", "--threads", str(THREADS), "--no-access-log"]
    with contextlib.ExitStack() as stack:
        # one after the other: each takes the stack's lock while it starts
        servers = [stack.enter_context(serving(args, project, env)) for _ in range(INSTANCES)]
        assert servers[0].get("/limit") == (200, f'"{MAX_CONNECTIONS}"')  # the flow's flag, honoured locally

        answers = asyncio.run(load([s.url for s in servers]))
        assert {status for status, _, _ in answers} == {200}, answers
        backends = {int(body) for _, _, body in answers}
        per_instance = json.loads(env[POOLS_ENV])["my-project:budget-db.app"][0]
        assert len(backends) <= INSTANCES * per_instance <= MAX_CONNECTIONS - RESERVED

        # a pool that has no connection free within its pool_timeout
        status, body = servers[1].call("GET", "/second-connection")
        assert status == 503, body
        assert "retry later" in body

    code, out = run_bfctl(["outputs", "--json"], project, bfctl_env)
    assert code == 0, out
    applied = json.loads(out)["my-project:budget-db.app"]
    refused_by_every_driver(f"app:app-pw@{applied['host']}:{applied['port']}/app")


def refused_by_every_driver(address: str) -> None:
    """With every slot the app's user may have taken, each driver's refusal counts as the database
    being unavailable: psycopg says OperationalError, but pg8000 (the gcp target's sync driver)
    says ProgrammingError and SQLAlchemy's asyncpg adapter a bare DBAPIError (SQLSTATE 53300)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.ext.asyncio import create_async_engine

    from bfctl.runtime.responses import is_unavailable

    held: list[Any] = []
    refusals: list[Exception] = []

    async def with_asyncpg() -> None:
        made = create_async_engine(f"postgresql+asyncpg://{address}")
        try:
            async with made.connect():
                pass
        except Exception as e:
            refusals.append(e)
        finally:
            await made.dispose()

    try:
        refused = ""
        while not refused:
            try:
                held.append(psycopg.connect(f"postgresql://{address}"))
            except psycopg.OperationalError as e:
                refused = str(e)
            assert len(held) <= MAX_CONNECTIONS
        assert "remaining connection slots are reserved" in refused
        for driver in ("psycopg", "pg8000"):
            try:
                with create_engine(f"postgresql+{driver}://{address}").connect() as connection:
                    connection.execute(text("select 1"))
            except Exception as e:
                refusals.append(e)
        asyncio.run(with_asyncpg())
    finally:
        for connection in held:
            connection.close()
    assert len(refusals) == 3
    assert all(is_unavailable(e) for e in refusals), [type(e) for e in refusals]
