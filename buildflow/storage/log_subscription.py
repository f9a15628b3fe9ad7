"""A subscription of a durable topic log: the local stand-in for a Pub/Sub subscription.

The topic log (one message a line) is only ever appended to. A subscription is a small JSON
record next to it: ``read``, the byte offset up to which messages were handed out, and
``unacked``, the messages handed out but not acknowledged (the byte offset of the line → how many
times it was delivered and when its lease ends). A message is named by its offset, so the record
stays small however long the log grows, and everything before the smallest unacked offset is
done (the committed offset).

Offsets only mean something in the file they were taken in, so the record also names that file
(``log_inode``) and an ``epoch`` that ack ids carry. A log deleted and made again, or emptied, by
hand while in use (``rm``, ``: >``) is noticed on the next take (another inode, a size below the
read offset, or a read offset that is not a line's start): the record starts over at the new
file's beginning in a new epoch, once, with one line logged. Messages that were in the old file
are gone with it; an ack id of the old epoch then acks nothing in the new file.

Several processes and pull loops read one subscription: every change happens under a file lock
and replaces the record atomically and durably (``durable.replace_file``), so a message is never
leased to two readers at once and neither a restart nor a SIGKILL loses an ack. A message whose
lease ends without an ack is delivered again, and so is a nacked one once the delay the reader
gives for its attempt has passed (its lease then ends that much later: the others go on
meanwhile); after ``max_delivery_attempts`` deliveries it is handed out once more marked
``dead``, for the reader to append to the dead-letter topic and then ack.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from buildflow.storage import durable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # no fcntl on Windows: one process reads a subscription there

_CHUNK = 1 << 20  # bytes read from the log at a time

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Lease:
    """One message handed to one reader until its lease ends."""

    offset: int
    #: Deliveries so far, this one included.
    attempt: int
    data: bytes
    #: Its delivery attempts are used up: it goes to the dead-letter topic, not to the handler.
    dead: bool = False
    #: The record's epoch: which file of the log the offset is in.
    epoch: int = 0

    @property
    def ack_id(self) -> str:
        return f"{self.epoch}:{self.offset}.{self.attempt}"


def _parse(ack_id: str) -> tuple[int, str, int]:
    epoch, _, rest = ack_id.partition(":")
    offset, _, attempt = rest.partition(".")
    return int(epoch), offset, int(attempt)


@dataclasses.dataclass
class _Record:
    """A subscription record as stored."""

    read: int
    unacked: dict[str, list[float]]
    #: The inode of the log file the offsets are in (None: a record made before it was kept).
    log_inode: int | None = None
    epoch: int = 0

    def dump(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()


@contextlib.contextmanager
def _flock(path: Path, *, exclusive: bool) -> Iterator[int]:
    """``path`` opened and locked for the block: a shared lock to read the log (appends hold it
    exclusively, so a batch is seen whole or not at all), an exclusive one on a lock file."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644) if exclusive else os.open(path, os.O_RDONLY)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def lock_path(record: Path) -> Path:
    return record.with_name(f"{record.name}.lock")


@contextlib.contextmanager
def record_locked(record: Path) -> Iterator[None]:
    """The lock beside ``record`` held exclusively for the block: one process at a time
    reads, changes and writes the record."""
    with _flock(lock_path(record), exclusive=True):
        yield


def create(record: Path, log: Path) -> None:
    """Make the subscription: it gets every message appended to ``log`` from now on. An
    existing record is kept with its offsets (apply runs again after an interruption)."""
    with record_locked(record):
        if record.exists():
            return
        with _flock(log, exclusive=False) as fd:
            start = durable.whole_lines_end(fd)  # a torn tail is not a message
            inode = os.fstat(fd).st_ino
        durable.replace_file(record, _Record(start, {}, inode).dump())


def remove(record: Path) -> None:
    """Delete the subscription (its record and lock file)."""
    record.unlink(missing_ok=True)
    lock_path(record).unlink(missing_ok=True)


class LogSubscription:
    """Leases, acks, nacks and lease extensions on one subscription record.

    ``clock`` gives the wall-clock time leases are measured in (shared by every process).
    """

    def __init__(
        self,
        record: Path,
        log: Path,
        *,
        ack_deadline_seconds: float,
        max_delivery_attempts: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.record = record
        self.log = log
        self.ack_deadline_seconds = ack_deadline_seconds
        self.max_delivery_attempts = max_delivery_attempts
        self.clock = clock

    # -- the record ----------------------------------------------------------------------------
    def _load(self) -> _Record:
        try:
            raw = json.loads(self.record.read_bytes())
        except FileNotFoundError:
            raise FileNotFoundError(
                f"the subscription record {self.record} is missing: run `bfctl apply` to make the subscription"
            ) from None
        return _Record(int(raw["read"]), raw["unacked"], raw.get("log_inode"), int(raw.get("epoch", 0)))

    def _save(self, state: _Record) -> None:
        durable.replace_file(self.record, state.dump())

    def committed(self) -> int:
        """The offset before which every message is acknowledged."""
        state = self._load()
        return min((int(o) for o in state.unacked), default=state.read)

    def _has_work(self, now: float) -> bool:
        """Whether a take could lease anything, or must notice a log deleted or emptied (read
        without the lock: the record is replaced atomically, and the locked take decides)."""
        state = self._load()
        if any(until <= now for _, until in state.unacked.values()):
            return True
        try:
            stat = self.log.stat()
        except FileNotFoundError:
            return False
        return stat.st_size != state.read or stat.st_ino != (state.log_inode or stat.st_ino)

    def _start_over(self, fd: int, state: _Record) -> _Record:
        """The record itself, or a new epoch at the start of the log when the file is not the one
        its offsets are in (deleted and made again, emptied or cut short by hand)."""
        stat = os.fstat(fd)
        if state.log_inode is None:  # a record from before inodes were kept: this file is its own
            state.log_inode = stat.st_ino
        moved = stat.st_ino != state.log_inode or stat.st_size < state.read
        if not moved and (state.read == 0 or os.pread(fd, 1, state.read - 1) == b"\n"):
            return state
        log.warning(
            "the topic log %s is not the file subscription %s was reading (it was deleted, emptied or "
            "rewritten): the messages it held are gone (%d of them handed out and not acknowledged); "
            "reading the new file from its start",
            self.log,
            self.record.name.removesuffix(".subscription.json"),
            len(state.unacked),
        )
        return _Record(0, {}, stat.st_ino, state.epoch + 1)

    # -- the log ---------------------------------------------------------------------------------
    def _line_at(self, fd: int, offset: int) -> bytes:
        parts: list[bytes] = []
        pos = offset
        while True:
            chunk = os.pread(fd, 65536, pos)
            newline = chunk.find(b"\n")
            if newline >= 0 or not chunk:
                parts.append(chunk[: newline if newline >= 0 else len(chunk)])
                return b"".join(parts)
            parts.append(chunk)
            pos += len(chunk)

    def _new_lines(self, fd: int, read: int, count: int) -> list[tuple[int, bytes]]:
        """Up to ``count`` complete lines from ``read`` on, with their offsets."""
        lines: list[tuple[int, bytes]] = []
        pos, size = read, _CHUNK
        while len(lines) < count:
            chunk = os.pread(fd, size, pos)
            end = chunk.rfind(b"\n")
            if end < 0:
                if len(chunk) < size:
                    return lines  # the end of the log (a torn tail is not a message)
                size *= 2  # one line longer than a chunk
                continue
            for line in chunk[:end].split(b"\n"):
                if len(lines) == count:
                    break
                lines.append((pos, line))
                pos += len(line) + 1
        return lines

    # -- what readers do -------------------------------------------------------------------------
    def take(self, max_messages: int) -> list[Lease]:
        """Lease up to ``max_messages``: those whose lease ended (or were nacked) first, then
        new ones. Nothing is leased to anyone else until its lease ends."""
        if not self._has_work(self.clock()):
            return []
        with record_locked(self.record), contextlib.ExitStack() as stack:
            try:
                fd = stack.enter_context(_flock(self.log, exclusive=False))
            except FileNotFoundError:  # deleted: a publish makes it again
                return []
            now = self.clock()
            loaded = self._load()
            before = loaded.dump()
            state = self._start_over(fd, loaded)
            unacked, epoch = state.unacked, state.epoch
            until = now + self.ack_deadline_seconds
            leases: list[Lease] = []
            for key in sorted((k for k, (_, end) in unacked.items() if end <= now), key=int):
                if len(leases) == max_messages:
                    break
                attempts = int(unacked[key][0])
                dead = self.max_delivery_attempts is not None and attempts >= self.max_delivery_attempts
                attempt = attempts if dead else attempts + 1
                unacked[key] = [attempt, until]
                leases.append(Lease(int(key), attempt, self._line_at(fd, int(key)), dead, epoch))
            for offset, data in self._new_lines(fd, state.read, max_messages - len(leases)):
                unacked[str(offset)] = [1, until]
                leases.append(Lease(offset, 1, data, epoch=epoch))
                state.read = offset + len(data) + 1
            if state.dump() != before:
                self._save(state)
            return leases

    def _change(self, ack_ids: Iterable[str], change: Callable[[dict[str, list[float]], str, int], None]) -> None:
        ids = list(ack_ids)
        if not ids:
            return
        with record_locked(self.record):
            state = self._load()
            for ack_id in ids:
                epoch, key, attempt = _parse(ack_id)
                if epoch == state.epoch and key in state.unacked:
                    change(state.unacked, key, attempt)
            self._save(state)

    def ack(self, ack_ids: Iterable[str]) -> None:
        """Done with these: never delivered again (an ack from an earlier lease counts too:
        the message was handled)."""

        def ack(unacked: dict[str, list[float]], key: str, attempt: int) -> None:
            del unacked[key]

        self._change(ack_ids, ack)

    def nack(self, ack_ids: Iterable[str], delay: Callable[[int], float]) -> None:
        """Deliver these again ``delay(attempt)`` seconds from now (unless a later lease of them
        is out already)."""
        now = self.clock()

        def nack(unacked: dict[str, list[float]], key: str, attempt: int) -> None:
            if unacked[key][0] == attempt:
                unacked[key][1] = now + delay(attempt)

        self._change(ack_ids, nack)

    def extend(self, ack_ids: Iterable[str], seconds: float) -> None:
        """Keep these leased for ``seconds`` more from now."""
        until = self.clock() + seconds

        def extend(unacked: dict[str, list[float]], key: str, attempt: int) -> None:
            if unacked[key][0] == attempt:
                unacked[key][1] = max(unacked[key][1], until)

        self._change(ack_ids, extend)
