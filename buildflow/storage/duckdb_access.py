"""DuckDB database files that sinks write to, shared with the code that reads them.

DuckDB lets one process at a time open a file for writing, fails at once (no waiting) when
another has it, and inside a process refuses a second opening of a file already open with
other settings (``read_only=True``, say). So each process attaches the file to an in-memory
DuckDB instance of its own while it uses it and detaches it soon after (an attach takes
about 0.5 ms, a detach, DuckDB's checkpoint, a few ms):

- The file stays attached from batch to batch while they keep coming (a batch costs one
  commit), and is detached once unused for ``IDLE_SECONDS``, so other processes (a script,
  the duckdb CLI, a worker of the same deployment) can open it. A process that has had it
  for ``TURN_SECONDS`` detaches it as soon as it is unused and leaves it free for
  ``REST_SECONDS``, so they get it under sustained load too.
- Worker processes of one deployment wait for each other with an exclusive ``flock`` on
  ``<file>.lock``, held while the file is attached; a process outside this protocol that has
  the file is waited out by retrying the attach for ``FOREIGN_HOLDER_TIMEOUT``.
- Inside a process, every use of the file that may write (sink batches, the local target's
  DDL, user code's ``duckdb.connect``) is a cursor of the same instance; the file stays
  attached while any is open.
- Reading uses (``AnalysisQuery``) are cursors of a second instance that cannot write or
  touch any other file: it attaches the file ``READ_ONLY``, with external access off (no
  ``read_csv``, ``COPY ... TO``, ``ATTACH``, ``INSTALL`` of anything but this file and its WAL)
  and its configuration locked (no ``SET``). DuckDB refuses a file attached by two instances
  of one process, so the file is attached in one mode at a time: a use of the other mode
  waits until the current uses end (and new uses of the current mode wait behind it, so
  neither starves), for ``FOREIGN_HOLDER_TIMEOUT`` at most.
- In a process whose sinks write a file (``share_with_user_code``), ``duckdb.connect(path)``
  of that file, with or without ``read_only``, returns such a cursor, so an endpoint can read
  the table while collectors write to it (DuckDB would refuse a second opening of the file in
  the process). The cursor does not enforce ``read_only``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from buildflow.storage.ddl import literal, quote

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # no fcntl on Windows: callers check for None

IDLE_SECONDS = 0.01
TURN_SECONDS = 0.25
REST_SECONDS = 0.02
#: How long to keep trying when a process outside this protocol (a reader, the duckdb CLI) has the file.
FOREIGN_HOLDER_TIMEOUT = 10.0
#: Names DuckDB keeps for itself, which an attached file cannot take.
_RESERVED = frozenset({"memory", "system", "temp", "main"})
#: DuckDB's own ``connect``, whatever ``share_with_user_code`` puts in its place.
_duckdb_connect = duckdb.connect


class SharedDatabase:
    """One database file as seen by this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        # DuckDB names a file's database after its stem; so do we, so user SQL reads alike.
        stem = path.stem if path.stem.lower() not in _RESERVED else f"{path.stem}_file"
        self._alias = quote(stem)
        self._state = threading.Condition(threading.Lock())
        self._instance: Any = None
        #: The locked-down instance of read-only uses (made on the first).
        self._reader: Any = None
        #: The mode the file is attached in, while it is.
        self._read_only = False
        #: Uses waiting for the file to be attached in their mode, by mode.
        self._waiting = {False: 0, True: 0}
        self._lock_fd: int | None = None
        #: Cursors open on the attached file: it is detached only when there are none.
        self._users = 0
        self._attached_at: float | None = None
        #: Once this process has had the file, a file handle conflict is its own detached database,
        #: still alive for a user cursor being torn down: brief, waited out like a foreign holder.
        self._attached_before = False
        self._used_at = 0.0
        self._rest_until = 0.0

    @contextlib.contextmanager
    def connection(self, read_only: bool = False) -> Iterator[Any]:
        """A cursor on the file, attached for the block (and for other users' blocks);
        ``read_only``: a cursor of the instance that can neither write nor reach other files."""
        cursor = self._enter(read_only)
        try:
            yield cursor
        finally:
            cursor.close()
            self._leave()

    def user_connection(self) -> Any:
        """A cursor that keeps the file attached until it is garbage-collected: what
        ``duckdb.connect`` returns to user code (which rarely closes it)."""
        cursor = self._enter()
        # Not at exit: the closer thread would be stopped inside DuckDB, aborting the process.
        weakref.finalize(cursor, _closer.depart, self).atexit = False
        return cursor

    def release(self, wait: float = -1) -> None:
        """Detach now if nobody uses the file: when a command or a writer is done with it
        (waiting at most ``wait`` seconds for a use in progress; -1: as long as it takes)."""
        if not self._state.acquire(timeout=wait):
            return
        try:
            if self._attached_at is not None and not self._users:
                self._detach()
        finally:
            self._state.release()

    def remove(self) -> None:
        """Delete the database with its WAL and lock files (nobody may be using it)."""
        self.release()
        for path in (self.path, self.path.with_name(self.path.name + ".wal"), self.lock_path):
            path.unlink(missing_ok=True)

    def close_if_idle(self, now: float) -> float | None:
        """Detach when unused for ``IDLE_SECONDS``; else the seconds until it may be (None
        when there is nothing to wait for)."""
        if not self._state.acquire(blocking=False):
            return IDLE_SECONDS
        try:
            if self._attached_at is None or self._users:
                return None
            idle = now - self._used_at
            if idle < IDLE_SECONDS:
                return IDLE_SECONDS - idle
            self._detach()
            return None
        finally:
            self._state.release()

    def _enter(self, read_only: bool = False) -> Any:
        with self._state:
            self._wait_for_mode(read_only)
            if self._attached_at is not None and self._read_only != read_only:
                self._detach()
            if self._attached_at is None:
                rest = self._rest_until - time.monotonic()
                if rest > 0:
                    time.sleep(rest)  # others' turn
                self._attach(read_only)
            self._users += 1
            try:
                cursor = (self._reader if read_only else self._instance).cursor()
                cursor.execute(f"USE {self._alias}")
            except BaseException:
                self._leave_locked()
                raise
            return cursor

    def _leave(self) -> None:
        with self._state:
            self._leave_locked()

    def _busy_for(self, read_only: bool) -> bool:
        """Whether a use in mode ``read_only`` must wait: the file is in use in the other mode,
        or in this one while a use of the other waits for its turn."""
        if self._attached_at is None or not self._users:
            return False
        return self._read_only != read_only or self._waiting[not read_only] > 0

    def _wait_for_mode(self, read_only: bool) -> None:
        """Wait (``_state`` held) until the file may be used in mode ``read_only``."""
        if not self._busy_for(read_only):
            return
        self._waiting[read_only] += 1
        try:
            free = self._state.wait_for(lambda: not self._busy_for(read_only), FOREIGN_HOLDER_TIMEOUT)
        finally:
            self._waiting[read_only] -= 1
            self._state.notify_all()  # uses that waited behind this one
        if not free:
            raise self._held_in_process()

    def _leave_locked(self) -> None:
        self._users -= 1
        if self._users:
            return
        self._state.notify_all()
        self._used_at = time.monotonic()
        assert self._attached_at is not None
        if self._used_at - self._attached_at >= TURN_SECONDS:
            self._detach()
            self._rest_until = self._used_at + REST_SECONDS
        else:
            _closer.wake()

    def _attach(self, read_only: bool) -> None:
        if fcntl is None:
            raise RuntimeError("DuckDB sinks need POSIX file locks (Linux or macOS)")
        if read_only and self._reader is None:
            self._reader = self._locked_down_instance()
        elif self._instance is None:
            self._instance = _duckdb_connect(":memory:")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._attach_file(read_only)
        except BaseException:
            os.close(lock)  # closing releases the lock
            raise
        self._lock_fd = lock
        self._read_only = read_only
        self._attached_at = time.monotonic()
        self._attached_before = True

    def _locked_down_instance(self) -> Any:
        """An instance whose SQL reaches no file but this database (and its WAL), and whose
        settings SQL cannot change; kept for the process (one takes about 10 ms to make)."""
        instance = _duckdb_connect(":memory:")
        files = ", ".join(literal(str(path)) for path in (self.path, self.path.with_name(self.path.name + ".wal")))
        instance.execute(f"SET allowed_paths = [{files}]")
        instance.execute("SET enable_external_access = false")
        instance.execute("SET lock_configuration = true")
        return instance

    def _attach_file(self, read_only: bool) -> None:
        """Attach the file, waiting out a process that holds it without taking our lock."""
        statement = f"ATTACH {literal(str(self.path))} AS {self._alias}" + (" (READ_ONLY)" if read_only else "")
        instance = self._reader if read_only else self._instance
        deadline = time.monotonic() + FOREIGN_HOLDER_TIMEOUT
        delay = 0.005
        while True:
            try:
                instance.execute(statement)
                return
            except duckdb.IOException as e:
                if "lock" not in str(e).lower() or time.monotonic() > deadline:
                    raise
            except duckdb.ResourceInUseException:
                if not self._attached_before or time.monotonic() > deadline:
                    raise self._held_in_process() from None
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _held_in_process(self) -> RuntimeError:
        if self._attached_before:
            return RuntimeError(
                f"{self.path} is still held by a DuckDB connection of this process that is not closed; "
                "close connections to it once read"
            )
        return RuntimeError(
            f"{self.path} is already open in this process by a duckdb.connect made before the sinks "
            "started (at import time?); connect where the table is read, in the handler, and it "
            "shares the sink's file"
        )

    def _detach(self) -> None:
        try:
            (self._reader if self._read_only else self._instance).execute(f"DETACH {self._alias}")
        finally:
            self._attached_at = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


class _Closer:
    """The thread that detaches files once idle, and lets go of user connections once they
    are garbage-collected.

    A weakref callback runs wherever the collector happens to run, possibly in a thread that
    holds the database's state lock, so it only queues the database (``SimpleQueue.put`` is
    safe there) and this thread does the rest.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[SharedDatabase | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self.stopped = False

    def wake(self) -> None:
        """Look for idle files again (started on first use)."""
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="bf-duckdb-closer", daemon=True)
                self._thread.start()
        self._queue.put(None)

    def depart(self, database: SharedDatabase) -> None:
        """A user connection to ``database`` is gone (a weakref callback)."""
        self._queue.put(database)

    def _run(self) -> None:
        wait: float | None = None
        while True:
            try:
                departed = self._queue.get(timeout=wait)
            except queue.Empty:
                departed = None
            if self.stopped:
                return
            if departed is not None:
                departed._leave()
            now = time.monotonic()
            waits = [w for db in list(_databases.values()) if (w := db.close_if_idle(now)) is not None]
            wait = min(waits) if waits else None


_databases: dict[str, SharedDatabase] = {}
#: The files this process's sinks write to, which ``duckdb.connect`` shares with user code.
_shared: dict[str, SharedDatabase] = {}
_registry_lock = threading.Lock()
_closer = _Closer()
# Databases a forked child inherited: never touched again (detaching them in the child could
# write to a file the parent still has attached), only kept from being garbage-collected.
_inherited: list[SharedDatabase] = []


def shared_database(path: Path) -> SharedDatabase:
    """This process's handle on the database file ``path``."""
    key = str(Path(path).resolve())
    with _registry_lock:
        database = _databases.get(key)
        if database is None:
            database = _databases[key] = SharedDatabase(Path(key))
        return database


def duckdb_connection(path: Path, read_only: bool = False) -> contextlib.AbstractContextManager[Any]:
    """A cursor on ``path`` for reading (or writing) while sinks write to it; ``read_only``:
    one that can neither write nor reach any other file.

    Keep the block short: other processes wait for the file until it ends. Use it from a
    thread, not the event loop (the wait and DuckDB calls block).
    """
    return shared_database(path).connection(read_only)


def share_with_user_code(path: Path) -> None:
    """Let ``duckdb.connect(path, ...)`` in this process return a cursor on the sink's file
    (called when a sink starts writing to it).

    BuildFlow users read their tables with ``duckdb.connect(database, read_only=True)`` in
    endpoints. DuckDB refuses that while the file is attached here; replacing ``connect``
    with one that hands out a cursor for this process's sink files lets it work (other
    files, and ``:memory:``, go to DuckDB's own).
    """
    database = shared_database(path)
    with _registry_lock:
        _shared[str(database.path)] = database
        duckdb.connect = _connect


def _connect(database: Any = ":memory:", read_only: bool = False, config: dict[str, Any] | None = None) -> Any:
    """``duckdb.connect`` in a process whose sinks write DuckDB files."""
    shared = None
    if isinstance(database, (str, os.PathLike)):
        text = os.fspath(database)
        if text and not text.startswith(":"):
            shared = _shared.get(str(Path(text).resolve()))
    if shared is None:
        return _duckdb_connect(database, read_only=read_only, config=config or {})
    return shared.user_connection()


@atexit.register
def _detach_all() -> None:
    """Detach before the interpreter stops the closer thread, possibly inside DuckDB."""
    _closer.stopped = True
    for database in list(_databases.values()):
        database.release(wait=1.0)  # a use stuck waiting for another process must not hang the exit


def _after_fork_in_child() -> None:
    global _registry_lock, _closer  # noqa: PLW0603 - the child replaces the parent's lock and thread
    for database in _databases.values():
        if database._lock_fd is not None:
            os.close(database._lock_fd)  # the parent's lock stays the parent's
        _inherited.append(database)
    _databases.clear()
    _shared.clear()
    _registry_lock = threading.Lock()
    _closer = _Closer()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
