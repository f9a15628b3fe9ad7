"""A notes API on Cloud SQL: `bfctl apply` makes the database (an embedded PostgreSQL on the
local target) and runs its migrations (migrations/versions/), `bfctl serve` serves it."""

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
database = CloudSQLDatabase(instance=instance, database_name="notes").options(migrations="migrations")
app.manage(instance, database)
DB = SessionDep(db_primitive=database, db_user="notes", db_password="s3cret")


@dependency(Scope.PROCESS)
class Notes:
    def __init__(self, db: DB) -> None:
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
