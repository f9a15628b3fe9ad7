from buildflow import Flow
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings

app = Flow()
instance = CloudSQLInstance(
    instance_name="shop-db",
    project_id="my-project",
    region="us-central1",
    database_version=CloudSQLDatabaseVersion.MYSQL_8_0,
    settings=CloudSQLInstanceSettings(tier="db-f1-micro"),
)
app.manage(instance, CloudSQLDatabase(instance=instance, database_name="shop"))
