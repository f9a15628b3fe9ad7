"""BuildFlow's import path ``buildflow.io.gcp.bigquery_dataset``: the BigQuery dataset primitive."""

from buildflow.io.gcp.bigquery import BigQueryDataset

__all__ = ["BigQueryDataset"]
