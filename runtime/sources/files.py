"""File change streams on this machine: a watched folder (``Engine.WATCH``) and the folder that
stands in for a bucket (``Engine.FOLDER``, the objects a GCS sink writes included).

The outputs say everything: ``path`` (the folder, watched recursively), ``event_types`` (names
of the declared types; others are never delivered), ``record`` and ``settle_seconds``.

Nothing lost, nothing twice: the ``record`` (``buildflow.storage.change_record``: JSON,
replaced atomically and synced) keeps, per file, the state the consumer has acked (inode, size,
mtime); apply makes it with the files already there, which are never events. An event is the
difference between the folder and that record: a file it lacks was created, one that differs was
modified, one gone was deleted. So what arrived while no server ran is delivered at start, a
nacked event is found again, and an acked one never is. ``watchfiles.awatch`` only says when to
look (a rescan every few seconds catches what it missed). Several readers share the record under
a ``flock``: each event is claimed in it by one reader (until acked, nacked, its lease runs out,
or its process is gone), so two readers never hand out the same event.

A nacked event comes again after the ``Backoff`` delay of its attempt (recorded, so a restart
keeps it), while the other files go on; after ``MAX_DELIVERY_ATTEMPTS`` it is set aside in the
record and not delivered again until the file changes.

Partially written files: a file counts as written once no one has it open for writing (Linux
refuses a read lease while a writer has the file open; that is how it is asked) or, when the
system cannot tell or a writer keeps it open, once it has not changed for ``settle_seconds``.
Temporary files (``.<name>.tmp``, as ``buildflow.storage.durable.write_new_file`` makes before
linking an object into place) are never events: the bucket stand-in's objects appear whole.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import enum
import errno
import fcntl
import functools
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
from watchfiles import Change, awatch

from bfctl.runtime.redelivery import Backoff
from bfctl.runtime.sinks.base import local_path
from bfctl.runtime.sources.base import Delivery, SourceReader, source_name
from buildflow.storage import change_record
from buildflow.storage.change_record import Record, Signature
from buildflow.storage.engines import Engine
from buildflow.storage.log_subscription import record_locked
from buildflow.types.gcp import GCSChangeStreamEventType, GCSFileChangeEvent
from buildflow.types.local import FileChangeStreamEventType, LocalFileChangeEvent

logger = logging.getLogger(__name__)

#: Deliveries of one change before it is set aside (10: about four minutes of retries at the
#: default delays, so a sink that is down a while does not make files be set aside).
MAX_DELIVERY_ATTEMPTS = 10
#: How long ``pull`` waits for a change before returning nothing.
PULL_WAIT = 1.0
#: Seconds between looks while nothing seems to change (another reader's nack, a lost event).
RESCAN = 2.0
#: Seconds between looks while a file is still being written.
WRITING_POLL = 0.2


def open_for_writing(path: Path) -> bool | None:
    """Whether some process has ``path`` open for writing; None when the system cannot tell.

    Linux grants a read lease only when no one has the file open for writing. The lease is
    dropped at once; a lease break in that instant signals SIGURG (ignored) rather than SIGIO
    (which would end the process).
    """
    set_lease = getattr(fcntl, "F_SETLEASE", None)
    set_signal = getattr(fcntl, "F_SETSIG", None)
    if set_lease is None or set_signal is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.fcntl(fd, set_signal, signal.SIGURG)
        fcntl.fcntl(fd, set_lease, fcntl.F_RDLCK)
        fcntl.fcntl(fd, set_lease, fcntl.F_UNLCK)
    except OSError as exc:
        return True if exc.errno == errno.EAGAIN else None
    finally:
        os.close(fd)
    return False


@functools.cache
def _started(pid: int) -> float:
    return float(psutil.Process(pid).create_time())


def _this_process() -> dict[str, Any]:
    """Who claims: this process (a worker forked after import is another one)."""
    return {"pid": os.getpid(), "started": _started(os.getpid())}


def _alive(owner: Mapping[str, Any]) -> bool:
    """The claiming process still runs (the same one: pids are reused)."""
    try:
        return bool(psutil.Process(owner["pid"]).create_time() == owner["started"])
    except psutil.Error:
        return False


def _version(change: Change, signature: Signature | None) -> dict[str, Any]:
    """One change of a file as the record names it (attempts and set-aside changes are of one)."""
    return {"change": change.name, "signature": list(signature) if signature else None}


def _is(entry: dict[str, Any] | None, version: dict[str, Any] | None) -> bool:
    """``entry`` (an attempt, a set-aside change) is of this ``version`` of a file."""
    return entry is not None and version is not None and all(entry.get(k) == v for k, v in version.items())


class _Outcome(enum.Enum):
    ACKED = "acked"  # handled: the consumer has this version
    FAILED = "failed"  # nacked: again after its delay, or set aside after its last attempt
    RELEASED = "released"  # not worked on (the reader closed): again at once


@dataclasses.dataclass(frozen=True)
class _Handed:
    """A delivery this reader handed out and still holds."""

    rel: str
    change: Change
    signature: Signature | None

    @property
    def version(self) -> dict[str, Any]:
        return _version(self.change, self.signature)


class FolderChangeReader(SourceReader):
    """The changes of one folder, for one pull loop; ``event`` makes what a consumer gets."""

    lease_seconds = 60.0
    backoff: Backoff
    #: What the folder is: which files count (``change_record.change_filter``).
    engine: Engine

    def __init__(self, description: str, out: Mapping[str, Any], project_dir: Path, types: Mapping[Change, Any]):
        self.description = description
        self.folder = local_path(out["path"], project_dir)
        self.record_path = local_path(out["record"], project_dir)
        self.settle_seconds = float(out["settle_seconds"])
        self.types = dict(types)
        self.filter = change_record.change_filter(self.engine, self.record_path)
        self.backoff = Backoff.from_env(MAX_DELIVERY_ATTEMPTS)
        self._token = secrets.token_hex(6)
        self._count = 0
        self._handed: dict[str, _Handed] = {}
        self._seen: dict[str, tuple[Signature, float]] = {}  # unsettled files: version, since
        self._mutex = threading.Lock()
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._next_look = 0.0

    # -- what differs between the two engines ------------------------------------------------
    @abc.abstractmethod
    def event(self, rel: str, change: Change, event_type: Any) -> Any:
        """What the consumer receives for this change of ``rel`` (relative to the folder)."""

    def attributes(self, rel: str, change: Change, event_type: Any) -> dict[str, str]:
        return {}

    # -- the SourceReader interface -------------------------------------------------------
    async def open(self) -> None:
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.description}: the folder {self.folder} does not exist; run bfctl apply")
        # apply made the record; a stack applied before it did starts here
        await asyncio.to_thread(change_record.create, self.record_path, self.folder, self.engine)
        self._changed.set()  # the first pull looks at what is there already
        self._watcher = asyncio.create_task(self._watch(), name=f"watch {self.folder}")

    async def _watch(self) -> None:
        try:
            async for _ in awatch(self.folder, watch_filter=self.filter, stop_event=self._stop, recursive=True):
                self._changed.set()
        except Exception as exc:  # the rescans go on finding the changes, only later
            logger.warning(
                "%s: watching %s stopped (%s); looking every %ss instead", self.description, self.folder, exc, RESCAN
            )

    async def pull(self, max_messages: int) -> list[Delivery]:
        deadline = time.monotonic() + PULL_WAIT
        while True:
            if self._changed.is_set() or time.monotonic() >= self._next_look:
                self._changed.clear()
                deliveries, more = await asyncio.to_thread(self._claim, max_messages)
                if more:
                    self._changed.set()
                if deliveries:
                    return deliveries
            wait = min(deadline, self._next_look) - time.monotonic()
            if time.monotonic() >= deadline:
                return []
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)

    async def ack(self, ack_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self._settle, ack_ids, _Outcome.ACKED)

    async def nack(self, ack_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self._settle, ack_ids, _Outcome.FAILED)
        self._changed.set()  # the next look sets when to look for them again

    async def extend(self, ack_ids: Sequence[str], seconds: float) -> None:
        await asyncio.to_thread(self._extend, ack_ids, seconds)

    async def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await asyncio.to_thread(self._settle, list(self._handed), _Outcome.RELEASED)

    # -- under the record's lock ------------------------------------------------------------
    def _written(self, rel: str, signature: Signature, now: float) -> bool:
        """The writer closed the file, or it has not changed for ``settle_seconds``."""
        seen = self._seen.get(rel)
        if seen is None or seen[0] != signature:
            self._seen[rel] = seen = (signature, now)
        return open_for_writing(self.folder / rel) is False or now - seen[1] >= self.settle_seconds

    def _claim(self, max_messages: int) -> tuple[list[Delivery], bool]:
        with self._mutex, record_locked(self.record_path):
            record = Record.load(self.record_path)
            before = dataclasses.asdict(record)
            wall, now = time.time(), time.monotonic()
            record.claims = {rel: c for rel, c in record.claims.items() if c["until"] > wall and _alive(c["owner"])}
            current = change_record.scan(self.folder, self.filter)
            record.files = {  # a file this reader ignores is not a deletion
                rel: s for rel, s in record.files.items() if rel in current or self._counts(rel)
            }
            changes: list[tuple[str, Change, Signature | None]] = []
            for rel, now_as in current.items():
                acked = record.files.get(rel)
                if acked is None or tuple(acked) != now_as:
                    changes.append((rel, Change.added if acked is None else Change.modified, now_as))
            changes += [(rel, Change.deleted, None) for rel in record.files if rel not in current]
            changes.sort(key=lambda c: (c[2][2] if c[2] else 0, c[0]))  # oldest first
            versions = {rel: _version(change, signature) for rel, change, signature in changes}
            # what is about a version no longer pending is done with
            record.set_aside = {rel: v for rel, v in record.set_aside.items() if _is(v, versions.get(rel))}
            record.attempts = {rel: a for rel, a in record.attempts.items() if _is(a, versions.get(rel))}
            self._seen = {rel: s for rel, s in self._seen.items() if rel in current}
            deliveries: list[Delivery] = []
            writing = more = False
            soonest = float("inf")  # when a failed change may come again
            for rel, change, signature in changes:
                if rel in record.claims or rel in record.set_aside:
                    continue
                pending = record.attempts.get(rel)
                if pending is not None and pending.get("not_before", 0) > wall:  # failed: not yet again
                    soonest = min(soonest, pending["not_before"])
                    continue
                if signature is not None and not self._written(rel, signature, now):
                    writing = True
                    continue
                self._seen.pop(rel, None)
                if change not in self.types:  # not declared: the consumer has seen it
                    self._apply(record, rel, change, signature)
                    continue
                if len(deliveries) == max_messages:
                    more = True
                    break
                deliveries.append(self._hand_out(record, rel, change, signature, wall))
            if dataclasses.asdict(record) != before:
                record.save(self.record_path)
        self._next_look = now + min(WRITING_POLL if writing else RESCAN, soonest - wall)
        return deliveries, more

    def _counts(self, rel: str) -> bool:
        """Whether a file at ``rel`` would be an event (the filter's say)."""
        return bool(self.filter(Change.added, str(self.folder / rel)))

    def _hand_out(self, record: Record, rel: str, change: Change, signature: Signature | None, wall: float) -> Delivery:
        key = _version(change, signature)
        previous = record.attempts.get(rel)
        attempt = previous["n"] + 1 if previous is not None and _is(previous, key) else 1
        record.attempts[rel] = {**key, "n": attempt}
        self._count += 1
        ack_id = f"{self._token}-{self._count}"
        record.claims[rel] = {
            **key,
            "owner": _this_process(),
            "reader": self._token,
            "until": wall + self.lease_seconds,
        }
        self._handed[ack_id] = _Handed(rel, change, signature)
        event_type = self.types[change]
        return Delivery(
            ack_id=ack_id,
            attributes=self.attributes(rel, change, event_type),
            delivery_attempt=attempt,
            value=self.event(rel, change, event_type),
            key=rel,
        )

    @staticmethod
    def _apply(record: Record, rel: str, change: Change, signature: Signature | None) -> None:
        """The consumer has this version of ``rel`` now."""
        if signature is None:
            record.files.pop(rel, None)
        else:
            record.files[rel] = list(signature)
        record.attempts.pop(rel, None)

    def _settle(self, ack_ids: Sequence[str], outcome: _Outcome) -> None:
        with self._mutex:
            handed = [self._handed.pop(a) for a in ack_ids if a in self._handed]
            if not handed:
                return
            with record_locked(self.record_path):
                record = Record.load(self.record_path)
                wall = time.time()
                for h in handed:
                    if outcome is _Outcome.ACKED:
                        self._apply(record, h.rel, h.change, h.signature)
                    elif outcome is _Outcome.FAILED:
                        self._retry_later(record, h, wall)
                    if record.claims.get(h.rel, {}).get("reader") == self._token:
                        del record.claims[h.rel]
                record.save(self.record_path)

    def _retry_later(self, record: Record, handed: _Handed, wall: float) -> None:
        """A failed change comes again after its attempt's delay; after the last, never."""
        pending = record.attempts.get(handed.rel)
        if pending is None or not _is(pending, handed.version):
            return  # the file changed meanwhile: that is a new event
        if self.backoff.exhausted(pending["n"]):
            record.set_aside[handed.rel] = handed.version
            del record.attempts[handed.rel]
        else:
            pending["not_before"] = wall + self.backoff.delay(pending["n"])

    def _extend(self, ack_ids: Sequence[str], seconds: float) -> None:
        with self._mutex, record_locked(self.record_path):
            record = Record.load(self.record_path)
            for ack_id in ack_ids:
                h = self._handed.get(ack_id)
                claim = record.claims.get(h.rel) if h else None
                if claim is not None and claim["reader"] == self._token:
                    claim["until"] = time.time() + seconds
            record.save(self.record_path)


def _declared(out: Mapping[str, Any], enum: Any, changes: Mapping[Change, str]) -> dict[Change, Any]:
    names = set(out["event_types"])
    return {change: enum[name] for change, name in changes.items() if name in names}


class WatchReader(FolderChangeReader):
    """A folder's files as ``LocalFileChangeEvent``s (BuildFlow's metadata)."""

    engine = Engine.WATCH

    def event(self, rel: str, change: Change, event_type: Any) -> LocalFileChangeEvent:
        path = str(self.folder / rel)
        return LocalFileChangeEvent(path, event_type, metadata={"event_type": change, "src_path": path})

    def attributes(self, rel: str, change: Change, event_type: Any) -> dict[str, str]:
        return {"event_type": change.name, "src_path": str(self.folder / rel)}


class BucketFolderReader(FolderChangeReader):
    """A bucket's folder stand-in: its objects' changes as Cloud Storage notifications."""

    engine = Engine.FOLDER

    def __init__(self, description: str, out: Mapping[str, Any], project_dir: Path, types: Mapping[Change, Any]):
        super().__init__(description, out, project_dir, types)
        self.bucket = str(out["bucket"])

    def attributes(self, rel: str, change: Change, event_type: Any) -> dict[str, str]:
        return {"bucketId": self.bucket, "objectId": rel, "eventType": event_type.name}

    def event(self, rel: str, change: Change, event_type: Any) -> GCSFileChangeEvent:
        metadata: dict[str, Any] = self.attributes(rel, change, event_type)
        return GCSFileChangeEvent(rel, event_type, metadata=metadata, _reader=(self.folder / rel).read_bytes)


def watch_reader(primitive: Any, outputs: Mapping[str, Any], project_dir: Path) -> SourceReader:
    """``Engine.WATCH``: a folder on this machine (``LocalFileChangeStream``, or a portable
    ``FileChangeStream`` mapped to one)."""
    types = _declared(
        outputs,
        FileChangeStreamEventType,
        {Change.added: "CREATED", Change.modified: "MODIFIED", Change.deleted: "DELETED"},
    )
    return WatchReader(source_name(primitive), outputs, project_dir, types)


def bucket_folder_reader(primitive: Any, outputs: Mapping[str, Any], project_dir: Path) -> SourceReader:
    """``Engine.FOLDER``: the folder standing in for a bucket (``GCSFileChangeStream``); a new or
    rewritten object is ``OBJECT_FINALIZE``, a removed one ``OBJECT_DELETE``."""
    types = _declared(
        outputs,
        GCSChangeStreamEventType,
        {Change.added: "OBJECT_FINALIZE", Change.modified: "OBJECT_FINALIZE", Change.deleted: "OBJECT_DELETE"},
    )
    description = f"{source_name(primitive)} (folder stand-in for Cloud Storage)"
    return BucketFolderReader(description, outputs, project_dir, types)
