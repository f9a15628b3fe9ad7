"""Collectors for the throughput benchmark: PostgreSQL (Cloud SQL table) and DuckDB sinks,
against one INSERT per request and a plain endpoint."""

import dataclasses

from sqlalchemy import text

from buildflow import Flow
from buildflow.dependencies.sqlalchemy import SessionDep
from buildflow.io.duckdb import DuckDBTable
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance, CloudSQLTable
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings


@dataclasses.dataclass
class Event:
    user: str
    kind: str
    n: int


app = Flow()
instance = CloudSQLInstance(
    "bench-db",
    "bench-project",
    CloudSQLDatabaseVersion.POSTGRES_15,
    CloudSQLInstanceSettings(tier="db-f1-micro"),
    "us-central1",
)
database = CloudSQLDatabase("bench", instance)
events = CloudSQLTable(database, "events")
many = CloudSQLTable(database, "many_events")
app.manage(instance, database)
DB = SessionDep(database, db_user="bench", db_password="bench-password", pool_size=32, max_overflow=32)
service = app.service()


@app.collector("/pg/one", method="POST", sink=events)
def pg_one(event: Event) -> Event:
    return event


@app.collector("/pg/hundred", method="POST", sink=many)
def pg_hundred(batch: list[Event]) -> list[Event]:
    return batch


@app.collector("/duck/one", method="POST", sink=DuckDBTable("out/bench.duckdb", "events"))
def duck_one(event: Event) -> Event:
    return event


@service.endpoint("/plain", method="POST")
def plain(event: Event) -> dict:  # sync like the collectors: the same one trip to the thread pool
    return {"success": True}


@service.endpoint("/insert", method="POST")
def insert(event: Event, db: DB) -> dict:
    with db.session as session, session.begin():
        session.execute(
            text('insert into events ("user", kind, n) values (:user, :kind, :n)'), dataclasses.asdict(event)
        )
    return {"success": True}
