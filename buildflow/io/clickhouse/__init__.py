"""ClickHouse primitives (BuildFlow 0.3 import path ``buildflow.io.clickhouse``): declared so
BuildFlow flows import, refused by every target and by the runtime."""

from buildflow.io.clickhouse.clickhouse import ClickhouseTable

__all__ = ["ClickhouseTable"]
