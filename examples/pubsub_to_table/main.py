"""Events through Pub/Sub into a table: a collector publishes each event to a topic, a consumer
reads the topic's subscription into a Cloud SQL table, and an endpoint counts the rows.

Locally the topic is Google's Pub/Sub emulator (a durable log when gcloud is not installed) and
the database an embedded PostgreSQL; on gcp they are Pub/Sub and Cloud SQL.
"""

import dataclasses

from sqlalchemy import text

from buildflow import Flow
from buildflow.dependencies.sqlalchemy import SessionDep
from buildflow.io.gcp import (
    CloudSQLDatabase,
    CloudSQLInstance,
    CloudSQLTable,
    GCPPubSubSubscription,
    GCPPubSubTopic,
)
from buildflow.secrets import Secret
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings

app = Flow()
topic = GCPPubSubTopic("my-project", "events")
subscription = GCPPubSubSubscription("my-project", "events-store").options(topic=topic)
instance = CloudSQLInstance(
    instance_name="events-db",
    project_id="my-project",
    region="us-central1",
    database_version=CloudSQLDatabaseVersion.POSTGRES_15,
    settings=CloudSQLInstanceSettings(tier="db-f1-micro"),
)
database = CloudSQLDatabase(instance=instance, database_name="events")
table = CloudSQLTable(database, "events")
DB = SessionDep(db_primitive=database, db_user="events", db_password=Secret("events-db-password"))
# Made by `bfctl apply`, on gcp too. The table is made locally; on gcp it must exist already
# (the gcp target cannot make a table inside a Cloud SQL database).
app.manage(topic, subscription, instance, database)


@dataclasses.dataclass
class Event:
    user: str
    action: str


@app.collector("/events", method="POST", sink=topic)
def publish(event: Event) -> Event:
    """Answered once Pub/Sub has the message."""
    return event


@app.consumer(source=subscription, sink=table)
def store(event: Event) -> Event:
    """Each message becomes a row; it is acknowledged once the row is committed."""
    return event


service = app.service()


@service.endpoint("/count", method="GET")
def count(db: DB) -> dict[str, int]:
    """Rows stored so far."""
    return {"rows": db.session.execute(text('select count(*) from "events"')).scalar_one()}


if __name__ == "__main__":
    app.run()
