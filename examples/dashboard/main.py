"""A dashboard page written the Pipedream way: the page names the results it needs, and the
dispatcher's functions that make them run concurrently, in the endpoint's per-request plan.

`note_count` reads the notes database (the notes example's, through SessionDep: sync, in the
thread pool) while `forecast` and `headlines` wait on a slow upstream (simulated with
`asyncio.sleep`): the page takes about as long as the slowest of the three, not their sum.
`bfctl apply` makes the database (an embedded PostgreSQL on the local target), `bfctl serve`
serves the page at /dashboard?city=Oslo.
"""

import asyncio

from sqlalchemy import text

from buildflow import Flow
from buildflow.dependencies import Scope, dependency
from buildflow.dependencies.sqlalchemy import SessionDep
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance
from buildflow.pipedream import Dispatcher
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings

#: How long the simulated upstream takes to answer, in seconds.
UPSTREAM_DELAY = 0.2

app = Flow()
instance = CloudSQLInstance(
    instance_name="notes-db",
    project_id="my-project",
    region="us-central1",
    database_version=CloudSQLDatabaseVersion.POSTGRES_15,
    settings=CloudSQLInstanceSettings(tier="db-f1-micro"),
)
database = CloudSQLDatabase(instance=instance, database_name="notes")
app.manage(instance, database)
DB = SessionDep(db_primitive=database, db_user="notes", db_password="s3cret")


@dependency(Scope.REPLICA)
class NotesTable:
    """The notes example's table, made once per worker if this flow is served first."""

    def __init__(self, maker: DB.SessionMaker) -> None:
        with maker.engine.begin() as conn:
            conn.execute(
                text(
                    "create table if not exists note ("
                    " id bigserial primary key, title text not null, body text not null default '',"
                    " created_at timestamptz not null default now())"
                )
            )


dispatcher = Dispatcher()


@dispatcher.add
def note_count(db: DB, table: NotesTable) -> int:
    """A typed dependency is a parameter of a dispatcher function by its annotation, as in a handler."""
    with db.session as session:
        return int(session.execute(text("select count(*) from note")).scalar_one())


@dispatcher.add
async def forecast(city: str) -> dict:
    """`city` is the request's query value: the call-time argument of that name."""
    await asyncio.sleep(UPSTREAM_DELAY)
    return {"city": city, "sky": "clear" if len(city) % 2 else "cloudy"}


@dispatcher.add
async def headlines() -> list:
    await asyncio.sleep(UPSTREAM_DELAY)
    return ["Pipedream flows into BuildFlow", "Dispatchers now share the request plan"]


service = app.service()
service.use_dispatcher(dispatcher)


@service.endpoint("/dashboard", method="GET")
def dashboard(note_count, forecast, headlines, city: str = "Oslo") -> dict:
    return {"notes": note_count, "forecast": forecast, "headlines": headlines}


if __name__ == "__main__":
    app.run()
