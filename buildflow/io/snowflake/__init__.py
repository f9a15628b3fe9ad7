"""Snowflake primitives (BuildFlow 0.3 import path ``buildflow.io.snowflake``): declared so
BuildFlow flows import, refused by every target and by the runtime."""

from buildflow.io.snowflake.snowflake_table import SnowflakeTable
from buildflow.io.snowflake.utils import read_private_key_file, read_private_key_file_bytes

__all__ = ["SnowflakeTable", "read_private_key_file", "read_private_key_file_bytes"]
