from sqlalchemy import text

from buildflow import Flow
from buildflow.dependencies.sqlalchemy import SessionDep
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance
from buildflow.secrets import Secret
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings

app = Flow()
instance = CloudSQLInstance(
    instance_name="ledger-db",
    project_id="my-project",
    region="us-central1",
    database_version=CloudSQLDatabaseVersion.POSTGRES_15,
    settings=CloudSQLInstanceSettings(tier="db-f1-micro"),
)
database = CloudSQLDatabase(instance=instance, database_name="ledger")
app.manage(instance, database)
DB = SessionDep(db_primitive=database, db_user="ledger", db_password=Secret("ledger-db-password"))

service = app.service()


@service.endpoint("/whoami", method="GET")
def whoami(db: DB) -> dict[str, str]:
    """Who the handlers log in as: proof that the generated password works."""
    return {"user": db.session.execute(text("select current_user")).scalar_one()}
