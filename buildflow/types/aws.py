"""Value types of BuildFlow's AWS primitives (``buildflow.types.aws``), kept for its imports."""

from __future__ import annotations

import dataclasses
import enum

from buildflow.types.portable import FileChangeEvent, PortableFileChangeEventType


class S3ChangeStreamEventType(enum.Enum):
    """S3 notification event names (BuildFlow's members and values)."""

    OBJECT_CREATED_ALL = "ObjectCreated:*"
    OBJECT_CREATED_PUT = "ObjectCreated:Put"
    OBJECT_CREATED_POST = "ObjectCreated:Post"
    OBJECT_CREATED_COPY = "ObjectCreated:Copy"
    OBJECT_CREATED_COMPLETE_MULTIPART_UPLOAD = "ObjectCreated:CompleteMultipartUpload"
    OBJECT_REMOVED_ALL = "ObjectRemoved:*"
    OBJECT_REMOVED_DELETE = "ObjectRemoved:Delete"
    OBJECT_REMOVED_DELETE_MARKER_CREATED = "ObjectRemoved:DeleteMarkerCreated"
    UNKNOWN = "unknown"

    def to_portable_type(self) -> PortableFileChangeEventType:
        if self.value.startswith("ObjectCreated:"):
            return PortableFileChangeEventType.CREATED
        if self.value.startswith("ObjectRemoved:"):
            return PortableFileChangeEventType.DELETED
        return PortableFileChangeEventType.UNKNOWN


@dataclasses.dataclass
class S3FileChangeEvent(FileChangeEvent):
    """A change of an object of an S3 bucket (never produced: bfctl does not support AWS)."""

    bucket_name: str = ""
