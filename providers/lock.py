"""One lock per target and stack, so two applies on a stack cannot run at once.

The lock is a file created with ``O_CREAT | O_EXCL`` holding who took it. A holder whose
process is gone (same host, pid dead or reused) is reported as stale and may be broken.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

from bfctl.providers.errors import ProviderError

# A lock file with no readable content younger than this may still be being written.
_WRITE_GRACE_SECONDS = 2.0


@dataclasses.dataclass(frozen=True)
class LockInfo:
    pid: int
    hostname: str
    command: str
    started_at: str  # ISO 8601, UTC
    pid_started_at: float = 0.0  # the holder's process start time, to tell a reused pid
    token: str = ""

    def describe(self) -> str:
        return f"`{self.command}` (pid {self.pid} on {self.hostname}, since {self.started_at})"

    @classmethod
    def for_this_process(cls, command: str) -> LockInfo:
        import psutil  # imported by the commands that lock, not by every one that reads state

        return cls(
            pid=os.getpid(),
            hostname=socket.gethostname(),
            command=command,
            started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            pid_started_at=psutil.Process().create_time(),
            token=secrets.token_hex(8),
        )


def holder_is_alive(info: LockInfo) -> bool | None:
    """True/False for a holder on this host; None when it is on another host (cannot tell)."""
    import psutil

    if info.hostname != socket.gethostname():
        return None
    try:
        started = psutil.Process(info.pid).create_time()
    except (psutil.NoSuchProcess, ValueError):
        return False
    return not info.pid_started_at or abs(started - info.pid_started_at) < 1.0


class StateLockedError(ProviderError):
    """The stack is locked by another command; says who holds it and whether it is stale."""

    def __init__(self, path: Path, holder: LockInfo | None, stale: bool) -> None:
        self.path, self.holder, self.stale = path, holder, stale
        who = holder.describe() if holder else "an unknown process (empty lock file)"
        if stale:
            advice = f"that process is no longer running (stale lock); break it with --break-lock or delete {path}"
        elif holder and holder_is_alive(holder) is None:
            advice = (
                "it is held on another host, so whether it is still running cannot be checked; "
                "if you are sure it is not, break it with --break-lock"
            )
        else:
            advice = "wait for it to finish"
        super().__init__(f"state is locked by {who}: {advice}")


def _read(path: Path) -> LockInfo | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return LockInfo(**data)
    except (OSError, ValueError, TypeError):  # gone, or not written yet
        return None


def _is_stale(path: Path, info: LockInfo | None) -> bool:
    if info is None:
        try:
            return time.time() - path.stat().st_mtime > _WRITE_GRACE_SECONDS
        except FileNotFoundError:
            return False
    return holder_is_alive(info) is False


class StateLock:
    """Context manager holding ``path`` for one command of this process."""

    def __init__(self, path: Path, command: str, *, break_lock: bool = False) -> None:
        self.path, self.command, self.break_lock = path, command, break_lock
        self.info: LockInfo | None = None

    def acquire(self) -> LockInfo:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        info = LockInfo.for_this_process(self.command)
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                self._handle_existing()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(dataclasses.asdict(info), f)
                f.flush()
                os.fsync(f.fileno())
            self.info = info
            return info
        raise StateLockedError(self.path, _read(self.path), stale=False)

    def _handle_existing(self) -> None:
        holder = _read(self.path)
        stale = _is_stale(self.path, holder)
        foreign = holder is not None and holder_is_alive(holder) is None
        if not (self.break_lock and (stale or foreign)):
            if holder is None and not stale and self.path.exists():
                time.sleep(0.1)  # being written right now: look again
                return
            if not self.path.exists():
                return  # released meanwhile: try again
            raise StateLockedError(self.path, holder, stale)
        self._break(holder)

    def _break(self, holder: LockInfo | None) -> None:
        """Move the judged lock aside atomically; put it back if it changed meanwhile."""
        aside = self.path.with_name(f"{self.path.name}.broken-{secrets.token_hex(4)}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if holder is not None and _read(aside) != holder:
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
        aside.unlink()

    def release(self) -> None:
        if self.info is not None and _read(self.path) == self.info:
            self.path.unlink()
        self.info = None

    def __enter__(self) -> LockInfo:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
