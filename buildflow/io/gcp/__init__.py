"""Google Cloud primitives (BuildFlow 0.3 import path ``buildflow.io.gcp``)."""

from buildflow.io.gcp.cloud_sql import CloudSQLDatabase, CloudSQLInstance, CloudSQLUser

__all__ = ["CloudSQLDatabase", "CloudSQLInstance", "CloudSQLUser"]
