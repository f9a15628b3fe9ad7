"""``FileChangeStream``: changes of files, as a consumer's source (BuildFlow's
``buildflow.io.portable.file_change_stream``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, ClassVar

from buildflow.io.primitive import PortablePrimitive, PrimitiveValidationError
from buildflow.types.portable import PortableFileChangeEventType


@dataclasses.dataclass
class FileChangeStream(PortablePrimitive):
    """Locally the folder ``file_path`` (a ``LocalFileChangeStream``); on gcp the notifications
    of the bucket named ``file_path`` (a ``GCSFileChangeStream``), bucket included."""

    file_path: str
    event_types: Iterable[PortableFileChangeEventType] = (PortableFileChangeEventType.CREATED,)

    resource_type: ClassVar[str] = "portable.FileChangeStream"
    replace_properties: ClassVar[frozenset[str]] = frozenset({"file_path", "event_types"})

    def __post_init__(self) -> None:
        self.event_types = tuple(self.event_types)
        self.validate()

    def primitive_id(self) -> str:
        return f"file-change-stream:{self.file_path}"

    def desired_properties(self) -> dict[str, Any]:
        return {"file_path": self.file_path, "event_types": sorted(e.name for e in self.event_types)}

    def validate(self) -> None:
        if not isinstance(self.file_path, str) or not self.file_path:
            raise PrimitiveValidationError(
                f"FileChangeStream: file_path must be a folder or bucket name, got {self.file_path!r}"
            )
        known = (PortableFileChangeEventType.CREATED, PortableFileChangeEventType.DELETED)
        if not self.event_types or any(e not in known for e in self.event_types):
            raise PrimitiveValidationError(
                "FileChangeStream: event_types must be PortableFileChangeEventType.CREATED or DELETED, "
                f"got {list(self.event_types)!r}"
            )
