"""What a target and stack have applied: one JSON file, written atomically.

``<project>/.buildflow/state/<target>-<stack>.json``, and beside it ``<name>.bak``: the version
the last write replaced, so a state file damaged by hand or by a failing disk can be put back
by copying the backup over it. The file holds properties as applied,
outputs and provider bookkeeping. It never holds a secret in plain text: a secret property
is recorded as its SCRAM-SHA-256 verifier (see ``bfctl.providers.secrets``), enough to tell whether
the declared value changed. The file is still created with mode 0600, as it names hosts,
ports and users.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bfctl.providers.errors import ProviderError
from bfctl.providers.lock import LockInfo, StateLock, StateLockedError
from buildflow.storage import durable

if TYPE_CHECKING:
    from buildflow.io.primitive import Primitive

__all__ = [
    "LockInfo",
    "ResourceState",
    "State",
    "StateFileError",
    "StateLockedError",
    "StateStore",
    "write_atomic",
]

STATE_VERSION = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_STRINGS = "a list of strings"
#: A resource record's fields: the JSON type each holds, named for messages, and whether it
#: may be left out. Checked on load, so a file edited by hand fails there, not deep in a plan.
_RESOURCE_FIELDS: dict[str, tuple[type, str, bool]] = {
    "resource_id": (str, "a string", False),
    "resource_type": (str, "a string", False),
    "properties": (dict, "an object", False),
    "secret_properties": (list, _STRINGS, True),
    "parents": (list, _STRINGS, True),
    "outputs": (dict, "an object", True),
    "private": (dict, "an object", True),
}


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
        """The state ``data`` describes; ValueError with a short reason when it is not one."""
        if not isinstance(data, dict):
            raise ValueError(f"it holds a JSON {_json_kind(data)}, not an object")
        version = data.get("version")
        if isinstance(version, int) and not isinstance(version, bool) and version > STATE_VERSION:
            raise NewerStateFormat(version)
        if version != STATE_VERSION:
            raise ValueError(f"its `version` is {version!r}, not {STATE_VERSION}")
        for name, kind, expected in [
            ("target", str, "a string"),
            ("stack", str, "a string"),
            ("serial", int, "a number"),
            ("resources", list, "a list"),
        ]:
            if name not in data:
                raise ValueError(f"it has no `{name}` field")
            if not _is(data[name], kind):
                raise ValueError(f"its `{name}` is {_a(data[name])}, not {expected}")
        resources = [_resource(i + 1, entry) for i, entry in enumerate(data["resources"])]
        return cls(data["target"], data["stack"], data["serial"], {r.resource_id: r for r in resources})

    def children_of(self, resource_id: str) -> list[ResourceState]:
        return [r for r in self.resources.values() if resource_id in r.parents]


class NewerStateFormat(ValueError):
    """The file is in a later format than this bfctl reads: a backup would not help."""

    def __init__(self, version: int) -> None:
        super().__init__(f"it is in state format {version}; this bfctl reads format {STATE_VERSION}")
        self.version = version


def _json_kind(value: Any) -> str:
    kinds = {
        dict: "object",
        list: "list",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }
    return kinds.get(type(value), type(value).__name__)


def _a(value: Any) -> str:
    """``value``'s JSON kind with its article: "a list", "an object"."""
    kind = _json_kind(value)
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _is(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _resource(number: int, entry: Any) -> ResourceState:
    """Resource ``number`` of the file; ValueError naming the field that has the wrong type."""
    if not isinstance(entry, dict):
        raise ValueError(f"resource {number} is {_a(entry)}, not an object")
    rid = entry.get("resource_id")
    where = f"resource {number} ({rid})" if isinstance(rid, str) else f"resource {number}"
    unknown = sorted(set(entry) - _RESOURCE_FIELDS.keys())
    if unknown:
        raise ValueError(f"{where} has a field `{unknown[0]}` that a resource record does not have")
    for name, (kind, expected, optional) in _RESOURCE_FIELDS.items():
        if name not in entry:
            if optional:
                continue
            raise ValueError(f"{where} has no `{name}`")
        value = entry[name]
        if not _is(value, kind):
            raise ValueError(f"{where} has {_a(value)} as `{name}`, not {expected}")
        for item in value if kind is list else ():
            if not isinstance(item, str):
                raise ValueError(f"{where} has {_a(item)} as an item of `{name}`, not a string")
    return ResourceState(**entry)


def _decode(raw: bytes) -> State:
    """Parse a state file's bytes; ValueError with a reason short enough for one sentence."""
    if not raw.strip():
        raise ValueError("it is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        cut_short = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        ending = "; it ends early, as a truncated file does" if cut_short else ""
        raise ValueError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{ending}") from None
    return State.from_dict(data)


class StateFileError(ProviderError):
    """The state file exists but cannot be read; ``str()`` is one sentence saying how to recover."""

    def __init__(self, path: Path, reason: str, backup: Path | None, *, newer: bool = False) -> None:
        shown = _shown(path)
        if newer:
            advice = "a later bfctl wrote it: upgrade bfctl to use this stack"
        elif backup is not None:
            advice = (
                f"its previous version, from before the last change, is in {_shown(backup)}: copy it over "
                f"the state file to recover (`cp {_shown(backup)} {shown}`), or repair the file by hand"
            )
        else:
            advice = (
                "there is no previous version beside it: repair the file by hand, or move it away to start "
                "from an empty state (what it recorded must then be removed by hand)"
            )
        super().__init__(f"The state file {shown} cannot be read ({reason}); {advice}.")
        self.path = path
        self.reason = reason
        self.backup = backup


def _shown(path: Path) -> str:
    """``path`` relative to the working directory (the project, for bfctl) when it is under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new file, never a mix
    (its folder made first; readable by its owner only unless ``mode`` says otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    durable.replace_file(path, data, mode)


def check_name(kind: str, value: str) -> str:
    """Target and stack names end up in file names: keep them to a safe alphabet."""
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{kind} name {value!r} is not valid: use letters, digits, '-', '_' or '.', "
            "starting with a letter or digit (at most 63 characters)"
        )
    return value


#: The private record of a made primitive naming the portable ids it stands for.
STANDS_FOR = "stands_for"


def _bookkeeping(primitive: Primitive) -> dict[str, Any]:
    """What the state keeps privately about ``primitive``: the portable ids it stands for."""
    return {STANDS_FOR: list(primitive.stands_for)} if primitive.stands_for else {}


def outputs_of(state: State) -> dict[str, dict[str, Any]]:
    """The outputs of every resource of ``state`` by its id, and by the portable ids it stands for."""
    outputs = {rid: dict(r.outputs) for rid, r in state.resources.items()}
    for resource in state.resources.values():
        for portable_id in resource.private.get(STANDS_FOR, []):
            outputs.setdefault(portable_id, {}).update(resource.outputs)
    return outputs


def record(
    state: State,
    primitive: Primitive,
    properties: dict[str, Any],
    outputs: dict[str, Any],
    private: dict[str, Any] | None = None,
    parents: list[str] | None = None,
) -> ResourceState:
    """Record ``primitive`` as applied (its parents are its primitive's unless given)."""
    rid = primitive.primitive_id()
    state.resources[rid] = ResourceState(
        resource_id=rid,
        resource_type=primitive.resource_type,
        properties=properties,
        secret_properties=sorted(primitive.secret_properties),
        parents=[p.primitive_id() for p in primitive.parents()] if parents is None else parents,
        outputs=outputs,
        private={**(private or {}), **_bookkeeping(primitive)},
    )
    return state.resources[rid]


class StateStore:
    """Loads, saves and locks the state of one target and stack of a project."""

    def __init__(self, project_dir: Path, target: str, stack: str) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.target = check_name("target", target)
        self.stack = check_name("stack", stack)
        root = self.project_dir / ".buildflow"
        self.path = root / "state" / f"{target}-{stack}.json"
        self.backup_path = self.path.with_name(self.path.name + ".bak")
        self.lock_path = root / "locks" / f"{target}-{stack}.lock"

    def load(self) -> State:
        """The recorded state, or an empty one when nothing was applied yet.

        Raises StateFileError, which says how to recover, when the file cannot be read.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return State(self.target, self.stack)
        try:
            return _decode(raw)
        except ValueError as exc:
            backup = self.backup_path if self.backup_path.is_file() else None
            raise StateFileError(self.path, str(exc), backup, newer=isinstance(exc, NewerStateFormat)) from None

    def save(self, state: State) -> None:
        """Write ``state`` (serial + 1) atomically, after keeping the file it replaces as ``.bak``."""
        data = {**state.to_dict(), "serial": state.serial + 1}
        self._keep_previous()
        write_atomic(self.path, json.dumps(data, indent=2).encode())
        state.serial += 1

    def _keep_previous(self) -> None:
        """Copy the current state file to ``<name>.bak``, atomically too.

        A copy, not a hard link: an editor that writes a linked file in place would change
        both. A current file that cannot be read is not copied, so it never replaces the
        last good backup.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        try:
            _decode(raw)
        except ValueError:
            return
        write_atomic(self.backup_path, raw)

    def lock(self, command: str, *, break_lock: bool = False) -> StateLock:
        return StateLock(self.lock_path, command, break_lock=break_lock)
