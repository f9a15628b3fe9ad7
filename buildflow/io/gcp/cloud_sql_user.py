"""BuildFlow's import path ``buildflow.io.gcp.cloud_sql_user``: the Cloud SQL user primitive."""

from buildflow.io.gcp.cloud_sql import CloudSQLUser

__all__ = ["CloudSQLUser"]
