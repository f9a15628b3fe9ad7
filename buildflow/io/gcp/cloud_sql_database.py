"""BuildFlow's import path ``buildflow.io.gcp.cloud_sql_database``: the Cloud SQL database primitive."""

from buildflow.io.gcp.cloud_sql import CloudSQLDatabase

__all__ = ["CloudSQLDatabase"]
