"""A folder on this machine whose file changes a consumer receives (BuildFlow's import path
``buildflow.io.local.file_change_stream``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from buildflow.io.primitive import LocalPrimitive, PrimitiveValidationError
from buildflow.types.local import FileChangeStreamEventType


@dataclasses.dataclass
class LocalFileChangeStream(LocalPrimitive):
    """Changes of the files under ``file_path`` (recursively); apply makes the folder."""

    file_path: str
    event_types: Iterable[FileChangeStreamEventType] = (FileChangeStreamEventType.CREATED,)

    resource_type: ClassVar[str] = "local.FileChangeStream"

    def __post_init__(self) -> None:
        self.file_path = os.path.abspath(self.file_path)  # BuildFlow: against the working directory
        self.event_types = tuple(self.event_types)
        self.validate()

    def primitive_id(self) -> str:
        return f"file-changes:{self.file_path}"

    def desired_properties(self) -> dict[str, Any]:
        return {"file_path": self.file_path, "event_types": sorted(e.name for e in self.event_types)}

    def validate(self) -> None:
        bad = [e for e in self.event_types if not isinstance(e, FileChangeStreamEventType)]
        if bad or not self.event_types:
            raise PrimitiveValidationError(
                f"LocalFileChangeStream: event_types must be FileChangeStreamEventType members "
                f"({', '.join(m.name for m in FileChangeStreamEventType)}), got {list(self.event_types)!r}"
            )
        if Path(self.file_path).is_file():
            raise PrimitiveValidationError(f"LocalFileChangeStream: {self.file_path} is a file; give a folder")
