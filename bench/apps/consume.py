"""A consumer for the throughput benchmark: a Pub/Sub subscription into a PostgreSQL table, and
a second subscription of the same topic for the hand-written loop it is compared with."""

import dataclasses

from buildflow import Flow
from buildflow.io.gcp import (
    CloudSQLDatabase,
    CloudSQLInstance,
    CloudSQLTable,
    GCPPubSubSubscription,
    GCPPubSubTopic,
)
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
topic = GCPPubSubTopic("bench-project", "bench-events")
ours = GCPPubSubSubscription("bench-project", "bench-consumer").options(topic=topic)
by_hand = GCPPubSubSubscription("bench-project", "bench-by-hand").options(topic=topic)
app.manage(instance, database, by_hand, CloudSQLTable(database, "hand_events").options(schema=Event))


@app.consumer(source=ours, sink=CloudSQLTable(database, "events"))
async def store(event: Event) -> Event:
    return event
