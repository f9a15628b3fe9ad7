"""Value types shared by primitives of every cloud (``buildflow.types.portable``)."""

from __future__ import annotations

import enum


class FileFormat(enum.Enum):
    """How a file sink encodes its rows (BuildFlow 0.3 members and values)."""

    PARQUET = "parquet"
    CSV = "csv"
    JSON = "json"

    @property
    def extension(self) -> str:
        """The file name extension, with its dot."""
        return f".{self.value}"
