"""A notes API on Cloud SQL: `bfctl apply` makes the database (an embedded PostgreSQL on the
local target), `bfctl serve` serves it."""

import dataclasses

from sqlalchemy import text

from buildflow import Flow
from buildflow.dependencies import Scope, dependency
from buildflow.dependencies.sqlalchemy import SessionDep
from buildflow.exceptions import HTTPException
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings

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
    """Creates the table once per worker, before the first request."""

    def __init__(self, maker: DB.SessionMaker) -> None:
        with maker.engine.begin() as conn:
            conn.execute(
                text(
                    "create table if not exists note ("
                    " id bigserial primary key, title text not null, body text not null default '',"
                    " created_at timestamptz not null default now())"
                )
            )


@dependency(Scope.PROCESS)
class Notes:
    def __init__(self, db: DB, table: NotesTable) -> None:
        self.session = db.session


@dataclasses.dataclass
class NewNote:
    title: str
    body: str = ""


service = app.service()


@service.endpoint("/notes", method="POST")
def create_note(note: NewNote, notes: Notes) -> dict:
    with notes.session as session, session.begin():
        row = session.execute(
            text("insert into note (title, body) values (:title, :body) returning id, title, body, created_at"),
            {"title": note.title, "body": note.body},
        ).one()
    return dict(row._mapping)


@service.endpoint("/notes", method="GET")
def list_notes(notes: Notes, limit: int = 100) -> list:
    with notes.session as session:
        rows = session.execute(text("select * from note order by id limit :limit"), {"limit": limit})
        return [dict(r._mapping) for r in rows]


@service.endpoint("/notes/{note_id}", method="GET")
def get_note(note_id: int, notes: Notes) -> dict:
    with notes.session as session:
        row = session.execute(text("select * from note where id = :id"), {"id": note_id}).one_or_none()
    if row is None:
        raise HTTPException(404, f"note {note_id} not found")
    return dict(row._mapping)


@service.endpoint("/notes/{note_id}", method="DELETE")
def delete_note(note_id: int, notes: Notes) -> dict:
    with notes.session as session, session.begin():
        deleted = session.execute(text("delete from note where id = :id"), {"id": note_id}).rowcount
    if not deleted:
        raise HTTPException(404, f"note {note_id} not found")
    return {"deleted": note_id}


if __name__ == "__main__":
    app.run()
