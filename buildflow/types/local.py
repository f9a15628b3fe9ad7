"""Value types of the local primitives (``buildflow.types.local``)."""

from __future__ import annotations

import enum


class FileChangeStreamEventType(enum.Enum):
    """What happened to a watched file (BuildFlow 0.3 members and values)."""

    CREATED = "added"
    DELETED = "deleted"
    MODIFIED = "modified"
