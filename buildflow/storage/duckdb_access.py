"""DuckDB database files shared by the worker processes of one deployment.

DuckDB lets one process at a time open a database file for writing. So every process goes
through an exclusive ``flock`` on ``<file>.lock`` and holds it exactly while it has the file
open. A process that wants the file first says so with a shared lock on ``<file>.waiting``;
the holder keeps the file open between batches (a batch then costs one commit, not an open
and a close, which takes about 20 ms) until it has been idle for ``IDLE_SECONDS``, or someone
is waiting and it has had the file for ``TURN_SECONDS``; then it closes it and the waiter
takes its turn. One worker alone never gives the file up while busy. Inside a process,
threads share one connection, one at a time.

Read a table that sinks write to with ``duckdb_connection(path)``; a plain
``duckdb.connect(path)`` from another process fails while a worker holds the file.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # no fcntl on Windows: callers check for None

IDLE_SECONDS = 0.05
TURN_SECONDS = 0.25
#: How long to keep trying when a process outside this protocol (the duckdb CLI, say) has the file.
FOREIGN_HOLDER_TIMEOUT = 10.0


class SharedDatabase:
    """One database file as seen by this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.waiting_path = path.with_name(path.name + ".waiting")
        self._mutex = threading.Lock()
        self._connection: Any = None
        self._lock_fd: int | None = None
        self._waiting_fd: int | None = None
        self._opened_at = 0.0
        self._used_at = 0.0

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """The connection, with the file held by this process and thread for the block."""
        handed_over = False
        with self._mutex:
            if self._connection is None:
                self._open()
            try:
                yield self._connection
            finally:
                self._used_at = time.monotonic()
                if self._used_at - self._opened_at >= TURN_SECONDS and self._someone_waits():
                    self._close()
                    handed_over = True
        if handed_over:
            time.sleep(0.002)  # the waiting process gets the file before we want it again
        else:
            _reaper.wake()

    def release(self) -> None:
        """Close now, if open: before the file is removed, or when a command is done with it."""
        with self._mutex:
            if self._connection is not None:
                self._close()

    def remove(self) -> None:
        """Delete the database with its WAL and lock files (nobody may be using it)."""
        self.release()
        for path in (self.path, self.path.with_name(self.path.name + ".wal"), self.lock_path, self.waiting_path):
            path.unlink(missing_ok=True)

    def close_if_idle(self, now: float) -> float | None:
        """Close when idle; else the seconds until it may be (None when closed)."""
        if not self._mutex.acquire(blocking=False):
            return IDLE_SECONDS
        try:
            if self._connection is None:
                return None
            idle = now - self._used_at
            if idle >= IDLE_SECONDS:
                self._close()
                return None
            return IDLE_SECONDS - idle
        finally:
            self._mutex.release()

    def _open(self) -> None:
        if fcntl is None:
            raise RuntimeError("DuckDB sinks need POSIX file locks (Linux or macOS)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        waiting = os.open(self.waiting_path, os.O_CREAT | os.O_RDWR, 0o644)
        lock = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(waiting, fcntl.LOCK_SH)  # "I want the file": the holder hands it over
            fcntl.flock(lock, fcntl.LOCK_EX)
            fcntl.flock(waiting, fcntl.LOCK_UN)
            self._connection = _connect(self.path)
        except BaseException:
            os.close(lock)  # closing releases the locks
            os.close(waiting)
            raise
        self._lock_fd, self._waiting_fd = lock, waiting
        self._opened_at = time.monotonic()

    def _someone_waits(self) -> bool:
        """Whether another process is waiting for the file (holds the waiting lock)."""
        assert self._waiting_fd is not None
        try:
            fcntl.flock(self._waiting_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._waiting_fd, fcntl.LOCK_UN)
        return False

    def _close(self) -> None:
        try:
            self._connection.close()
        finally:
            self._connection = None
            for fd in (self._lock_fd, self._waiting_fd):
                if fd is not None:
                    os.close(fd)
            self._lock_fd = self._waiting_fd = None


def _connect(path: Path) -> Any:
    """Open ``path``, waiting out a process that holds it without taking our lock."""
    deadline = time.monotonic() + FOREIGN_HOLDER_TIMEOUT
    delay = 0.01
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as e:
            if "lock" not in str(e).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class _Reaper:
    """The thread that closes idle databases, so other processes can have them."""

    def __init__(self) -> None:
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        with self._wakeup:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="bf-duckdb-reaper", daemon=True)
                self._thread.start()
            self._wakeup.notify()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                now = time.monotonic()
                waits = [w for db in list(_databases.values()) if (w := db.close_if_idle(now)) is not None]
                self._wakeup.wait(min(waits) if waits else None)


_databases: dict[str, SharedDatabase] = {}
_registry_lock = threading.Lock()
_reaper = _Reaper()
# Databases a forked child inherited: never touched again (closing them in the child could
# write to a file the parent still has open), only kept from being garbage-collected.
_inherited: list[SharedDatabase] = []


def shared_database(path: Path) -> SharedDatabase:
    """This process's handle on the database file ``path``."""
    key = str(Path(path).resolve())
    with _registry_lock:
        database = _databases.get(key)
        if database is None:
            database = _databases[key] = SharedDatabase(Path(key))
        return database


def duckdb_connection(path: Path) -> contextlib.AbstractContextManager[Any]:
    """A connection to ``path`` for reading (or writing) while workers write to it.

    Keep the block short: other workers wait for the file until it ends. Use it from a thread,
    not the event loop (the wait and DuckDB calls block).
    """
    return shared_database(path).connection()


def _after_fork_in_child() -> None:
    global _reaper, _registry_lock  # noqa: PLW0603 - the child replaces the parent's lock and reaper thread
    for database in _databases.values():
        for fd in (database._lock_fd, database._waiting_fd):
            if fd is not None:
                os.close(fd)  # the parent's locks stay the parent's
        _inherited.append(database)
    _databases.clear()
    _registry_lock = threading.Lock()
    _reaper = _Reaper()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
