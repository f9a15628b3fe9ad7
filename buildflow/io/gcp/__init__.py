"""Google Cloud primitives (BuildFlow 0.3 import path ``buildflow.io.gcp``)."""

from buildflow.io.gcp.bigquery import BigQueryDataset, BigQueryTable
from buildflow.io.gcp.cloud_sql import CloudSQLDatabase, CloudSQLInstance, CloudSQLUser
from buildflow.io.gcp.cloud_sql_table import CloudSQLTable
from buildflow.io.gcp.gcs_file_change_stream import GCSFileChangeStream
from buildflow.io.gcp.pubsub import GCPPubSubSubscription, GCPPubSubTopic
from buildflow.io.gcp.storage import GCSBucket

__all__ = [
    "BigQueryDataset",
    "BigQueryTable",
    "CloudSQLDatabase",
    "CloudSQLInstance",
    "CloudSQLTable",
    "CloudSQLUser",
    "GCPPubSubSubscription",
    "GCPPubSubTopic",
    "GCSBucket",
    "GCSFileChangeStream",
]
