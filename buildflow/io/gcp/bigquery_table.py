"""BuildFlow's import path ``buildflow.io.gcp.bigquery_table``: the BigQuery table primitive."""

from buildflow.io.gcp.bigquery import BigQueryTable

__all__ = ["BigQueryTable"]
