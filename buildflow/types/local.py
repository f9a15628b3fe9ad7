"""Value types of the local primitives (``buildflow.types.local``)."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path

from buildflow.types.portable import FileChangeEvent


class FileChangeStreamEventType(enum.Enum):
    """What happened to a watched file (BuildFlow 0.3 members and values)."""

    CREATED = "added"
    DELETED = "deleted"
    MODIFIED = "modified"


@dataclasses.dataclass
class LocalFileChangeEvent(FileChangeEvent):
    """A change of a file on this machine; ``blob`` reads it (a deleted file has none)."""

    @property
    def blob(self) -> bytes:
        if self.event_type == FileChangeStreamEventType.DELETED:
            raise ValueError(f"{self.file_path} was deleted: it has no contents")
        return self._reader() if self._reader is not None else Path(self.file_path).read_bytes()
