"""DuckDB primitives (BuildFlow 0.3 import path ``buildflow.io.duckdb``)."""

from buildflow.io.duckdb.duckdb import DuckDBTable

__all__ = ["DuckDBTable"]
