import dataclasses

from models import Task
from sqlalchemy import select

from buildflow import Flow
from buildflow.dependencies.sqlalchemy import SessionDep
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance
from buildflow.secrets import Secret
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings

app = Flow()

instance = CloudSQLInstance(
    instance_name="tasks-db",
    project_id="my-project",
    region="us-central1",
    database_version=CloudSQLDatabaseVersion.POSTGRES_15,
    settings=CloudSQLInstanceSettings(tier="db-f1-micro"),
)
database = CloudSQLDatabase(instance=instance, database_name="tasks").options(
    migrations="migrations", metadata="models:Base"
)
app.manage(instance, database)

DB = SessionDep(db_primitive=database, db_user="tasks", db_password=Secret("tasks-db-password"))


@dataclasses.dataclass
class NewTask:
    title: str


service = app.service()


@service.endpoint("/tasks", method="POST")
def add_task(task: NewTask, db: DB) -> dict:
    with db.session as session, session.begin():
        row = Task(title=task.title, done=False)
        session.add(row)
        session.flush()
        return {"id": row.id, "title": row.title, "done": row.done}


@service.endpoint("/tasks", method="GET")
def list_tasks(db: DB) -> list:
    with db.session as session:
        tasks = session.scalars(select(Task).order_by(Task.id))
        return [{"id": t.id, "title": t.title, "done": t.done} for t in tasks]
