"""The record a file change stream's readers share, made by apply and kept by the readers.

A stream's events are the difference between its folder and this record (what the consumer has
acked, per file), so the record also says where the stream starts: apply makes it holding the
files already there (``create``), and those are never events, as they were not for BuildFlow,
which watched from start-up; a file added or changed after that is one, even while no server
runs. The target and the readers must agree on which files count (``change_filter``), or a file
the readers ignore would look deleted to them.

Besides acked versions, the record keeps claims (who is handling which change), delivery
attempts with the time before which a failed change is not delivered again, and the changes set
aside after their last attempt (until the file changes again). It is JSON, replaced atomically
and synced, and changed only under ``log_subscription.record_locked``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildflow.storage import durable
from buildflow.storage.engines import Engine
from buildflow.storage.log_subscription import record_locked

if TYPE_CHECKING:
    from watchfiles import DefaultFilter

#: A temporary file of an atomic write (``.<name>.<random>.tmp``): never an event.
TEMPORARY = r"^\..+\.tmp$"

Signature = tuple[int, int, int]  # inode, size, mtime_ns: "this version of the file"


def signature(st: os.stat_result) -> Signature:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def change_filter(engine: Engine, record: Path) -> DefaultFilter:
    """What is never an event: temporary files and the readers' own record; in a watched folder
    (``Engine.WATCH``) also what watchfiles ignores by default (``.git``, ``__pycache__``, editor
    swap files...) and ``.buildflow``. A bucket's folder stand-in (``Engine.FOLDER``) holds only
    objects, each an event."""
    from watchfiles import DefaultFilter

    if engine == Engine.WATCH:
        return DefaultFilter(
            ignore_dirs=(*DefaultFilter.ignore_dirs, ".buildflow"),
            ignore_entity_patterns=(*DefaultFilter.ignore_entity_patterns, TEMPORARY),
            ignore_paths=(record.parent,),
        )
    return DefaultFilter(ignore_dirs=(), ignore_entity_patterns=(TEMPORARY,), ignore_paths=(record.parent,))


def scan(folder: Path, wanted: DefaultFilter) -> dict[str, Signature]:
    """The regular files under ``folder`` that ``wanted`` lets through: relative path -> version."""
    from watchfiles import Change

    found: dict[str, Signature] = {}
    for directory, subdirs, names in os.walk(folder):
        subdirs[:] = [d for d in subdirs if wanted(Change.added, os.path.join(directory, d))]
        for name in names:
            path = os.path.join(directory, name)
            if not wanted(Change.added, path):
                continue
            try:
                st = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                found[Path(path).relative_to(folder).as_posix()] = signature(st)
    return found


@dataclasses.dataclass
class Record:
    """What the readers of one stream share."""

    #: relative path -> the signature the consumer acked (or that was there when the stream began)
    files: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    #: relative path -> {"owner", "reader", "until" (epoch seconds), "change", "signature"}
    claims: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: relative path -> {"change", "signature", "n", "not_before" (epoch seconds)}: deliveries of
    #: its pending change so far, and when it may come again after a failure
    attempts: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: relative path -> {"change", "signature"}: a change that failed its last delivery attempt,
    #: never delivered again (a new change of the file is a new event)
    set_aside: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Record:
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls()
        return cls(**data)

    def save(self, path: Path) -> None:
        durable.replace_file(path, json.dumps(dataclasses.asdict(self), separators=(",", ":")).encode())


def create(record: Path, folder: Path, engine: Engine) -> None:
    """Start the stream here: the files in ``folder`` now are not events. An existing record is
    kept (apply runs again, or a reader opens after apply made it)."""
    durable.make_dirs(record.parent)
    with record_locked(record):
        if not record.exists():
            files = scan(folder, change_filter(engine, record)) if folder.is_dir() else {}
            Record(files={rel: list(s) for rel, s in files.items()}).save(record)
