"""What a target and stack have applied: one JSON file, written atomically.

``<project>/.buildflow/state/<target>-<stack>.json``. The file holds properties as applied,
outputs and provider bookkeeping. It never holds a secret in plain text: a secret property
is recorded as its SCRAM-SHA-256 verifier (see ``providers.secrets``), enough to tell whether
the declared value changed. The file is still created with mode 0600, as it names hosts,
ports and users.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from providers.lock import LockInfo, StateLock, StateLockedError

__all__ = ["LockInfo", "ResourceState", "State", "StateLockedError", "StateStore", "write_atomic"]

STATE_VERSION = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


@dataclasses.dataclass
class ResourceState:
    resource_id: str
    resource_type: str
    properties: dict[str, Any]
    secret_properties: list[str] = dataclasses.field(default_factory=list)
    parents: list[str] = dataclasses.field(default_factory=list)
    #: What users and dependencies may read (host, port, ...); never a secret.
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Target bookkeeping (data directory, ...); never a secret.
    private: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class State:
    target: str
    stack: str
    serial: int = 0
    resources: dict[str, ResourceState] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "target": self.target,
            "stack": self.stack,
            "serial": self.serial,
            "resources": [dataclasses.asdict(r) for r in self.resources.values()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"state file version {data.get('version')!r} is not supported (expected {STATE_VERSION})")
        resources = [ResourceState(**r) for r in data["resources"]]
        return cls(data["target"], data["stack"], data["serial"], {r.resource_id: r for r in resources})

    def children_of(self, resource_id: str) -> list[ResourceState]:
        return [r for r in self.resources.values() if resource_id in r.parents]


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new file, never a mix.

    Temp file in the same directory, fsync, ``os.replace``, then fsync of the directory so the
    rename itself survives a crash.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def check_name(kind: str, value: str) -> str:
    """Target and stack names end up in file names: keep them to a safe alphabet."""
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{kind} name {value!r} is not valid: use letters, digits, '-', '_' or '.', "
            "starting with a letter or digit (at most 63 characters)"
        )
    return value


class StateStore:
    """Loads, saves and locks the state of one target and stack of a project."""

    def __init__(self, project_dir: Path, target: str, stack: str) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.target = check_name("target", target)
        self.stack = check_name("stack", stack)
        root = self.project_dir / ".buildflow"
        self.path = root / "state" / f"{target}-{stack}.json"
        self.lock_path = root / "locks" / f"{target}-{stack}.lock"

    def load(self) -> State:
        """The recorded state, or an empty one when nothing was applied yet."""
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return State(self.target, self.stack)
        try:
            return State.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"state file {self.path} is unreadable: {exc}") from exc

    def save(self, state: State) -> None:
        """Write ``state`` (serial + 1) atomically."""
        data = {**state.to_dict(), "serial": state.serial + 1}
        write_atomic(self.path, json.dumps(data, indent=2).encode())
        state.serial += 1

    def lock(self, command: str, *, break_lock: bool = False) -> StateLock:
        return StateLock(self.lock_path, command, break_lock=break_lock)
