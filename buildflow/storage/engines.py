"""What stands behind a sink or a source on a target: the ``engine`` of a primitive's outputs.

A target writes it into the outputs of every sink and source it applies (``outputs["engine"]``)
and the runtime picks the sink's writer, or the source's reader, by it. State files hold the
plain strings, so the values never change; a ``StrEnum`` member is equal to its string, which
keeps old state readable.
"""

from __future__ import annotations

import enum


class Engine(enum.StrEnum):
    POSTGRES = "postgres"  # a PostgreSQL table (Cloud SQL, or the local server)
    DUCKDB = "duckdb"  # a table in a DuckDB file (also the local stand-in for BigQuery)
    FILE = "file"  # a file on this machine
    GCS = "gcs"  # Cloud Storage objects
    FOLDER = "folder"  # a folder standing in for a Cloud Storage bucket
    PUBSUB = "pubsub"  # a Pub/Sub topic (the service, or its emulator)
    LOG = "log"  # a durable JSON-lines log standing in for a Pub/Sub topic
    BIGQUERY = "bigquery"  # a BigQuery table
    WATCH = "watch"  # a folder on this machine whose file changes a consumer reads
    PULSE = "pulse"  # items handed out again and again (nothing applied)


#: Engines that only ever stand behind a source (no sink writes to them).
SOURCE_ONLY = frozenset({Engine.WATCH, Engine.PULSE})
