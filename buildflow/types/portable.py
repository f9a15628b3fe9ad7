"""Value types shared by primitives of every cloud (``buildflow.types.portable``)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any


class FileFormat(enum.Enum):
    """How a file sink encodes its rows (BuildFlow 0.3 members and values)."""

    PARQUET = "parquet"
    CSV = "csv"
    JSON = "json"

    @property
    def extension(self) -> str:
        """The file name extension, with its dot."""
        return f".{self.value}"


class PortableFileChangeEventType(enum.Enum):
    """What happened to a file of a portable ``FileChangeStream`` (BuildFlow's members and values;
    ``DELETED`` has BuildFlow's value, which no cloud event maps to)."""

    CREATED = "created"
    DELETED = "portable"
    UNKNOWN = "unknown"


@dataclasses.dataclass
class FileChangeEvent:
    """One change of one file, as a consumer of a file change stream receives it.

    ``blob`` reads the file's bytes when asked (the runtime gives each event its reader).
    """

    file_path: str
    event_type: Any
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    _reader: Callable[[], bytes] | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def blob(self) -> bytes:
        """The file's contents now."""
        if self._reader is None:
            raise ValueError(f"the contents of {self.file_path} cannot be read from this event ({self.event_type})")
        return self._reader()
