"""BuildFlow's import path ``buildflow.io.gcp.cloud_sql_instance``: the Cloud SQL instance primitive."""

from buildflow.io.gcp.cloud_sql import CloudSQLInstance

__all__ = ["CloudSQLInstance"]
