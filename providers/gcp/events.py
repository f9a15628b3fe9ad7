"""Pulumi engine events turned into the shared plan model and per-resource progress.

A preview's steps become ``ResourceChange``s: the strongest step seen for a resource decides
its action (a replace shows up as create-replacement, replace and delete-replaced steps), and
the step's inputs give the changed properties, old → new. Secrets never reach this module in
clear: the CLI blinds them in events, and any value that is (or contains) a secret is marked
secret here so the plan prints ``(secret)``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bfctl.providers.plan import SECRET, Action, PropertyChange, ResourceChange

if TYPE_CHECKING:
    from pulumi.automation import EngineEvent, StepEventMetadata

    from bfctl.providers.base import Progress, Status
    from buildflow.io.primitive import Primitive

#: Engine step ops → plan actions (``None``: not a change of the resource).
_ACTIONS: dict[str, Action | None] = {
    "same": "noop",
    "create": "create",
    "update": "update",
    "delete": "delete",
    "replace": "replace",
    "create-replacement": "replace",
    "delete-replaced": "replace",
    "discard": "delete",
    "discard-replaced": "replace",
    "import": "create",
    "import-replacement": "replace",
    "read": None,
    "read-replacement": None,
    "refresh": None,
    "remove-pending-replace": None,
}
#: What a replace deletes with the resource, by primitive type, said in the plan. BigQuery
#: changes no column's type in place (its API answers 400), so the provider replaces the table.
_REPLACE_LOSES = {
    "gcp.bigquery.Table": "its schema changes in a way BigQuery cannot apply in place (a column's type, "
    "JSON to RECORD say, or a dropped column): the table is deleted and made again, and its rows are lost; "
    "copy them first if they are needed",
}
_STRENGTH = {"noop": 0, "update": 1, "create": 2, "delete": 3, "replace": 4}
#: The steps a replace is finished after, in either order (delete-before-replace or not).
_REPLACE_STEPS = frozenset({"create-replacement", "delete-replaced"})
_SECRET_SIG = "4dabf18193072939515e22adb298388d"  # noqa: S105 - Pulumi's marker of a serialized secret
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # a value known only after apply
_PATH_PART = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|([^.\[\]]+)')


def resource_name(urn: str) -> str:
    """The Pulumi name in ``urn:pulumi:<stack>::<project>::<type>::<name>``: our primitive id."""
    return urn.split("::", 3)[-1]


def is_ours(resource_type: str) -> bool:
    """False for Pulumi's own resources (the stack, default providers)."""
    return bool(resource_type) and not resource_type.startswith("pulumi:")


def resource_type_name(token: str) -> str:
    """``gcp:sql/databaseInstance:DatabaseInstance`` → ``gcp.sql.DatabaseInstance`` (the primitives' form)."""
    package, module, kind = ([*token.split(":"), "", ""])[:3]
    return f"{package}.{module.split('/')[0]}.{kind}" if kind else token


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _contains_secret(value: Any) -> bool:
    if value == "[secret]":
        return True
    if isinstance(value, Mapping):
        return _SECRET_SIG in value or any(_contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_secret(v) for v in value)
    return False


def _shown(value: Any) -> Any:
    """A value for the plan: secrets masked, unknowns spelled out, Pulumi's bookkeeping dropped."""
    if _contains_secret(value):
        return SECRET
    if value == _UNKNOWN:
        return "(known after apply)"
    if isinstance(value, Mapping):
        return {k: _shown(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return value


def _lookup(inputs: Mapping[str, Any] | None, path: str) -> Any:
    """The value at a detailed-diff path such as ``settings.ipConfiguration.authorizedNetworks[0]``."""
    value: Any = inputs or {}
    for quoted, index, key in _PATH_PART.findall(path):
        if index and isinstance(value, list):
            value = value[int(index)] if int(index) < len(value) else None
        elif isinstance(value, Mapping):
            value = value.get(quoted or key)
        else:
            return None
        if _contains_secret(value):
            return SECRET
    return value


def _split_head(path: str) -> tuple[str, str]:
    """``settings.tier`` → (``settings``, ``.tier``): the top-level property and the rest."""
    match = re.match(r"([^.\[]*)(.*)", path, re.DOTALL)
    assert match is not None
    return match.group(1), match.group(2)


def _inputs_change(inputs: Mapping[str, Any] | None, created: bool, secret: frozenset[str]) -> list[PropertyChange]:
    out = []
    for key, value in (inputs or {}).items():
        if key.startswith("__"):
            continue
        name = _snake(key)
        hidden = name in secret or _contains_secret(value)
        shown = SECRET if hidden else _shown(value)
        out.append(PropertyChange(name, None if created else shown, shown if created else None, hidden))
    return out


def _diff_changes(meta: StepEventMetadata, secret: frozenset[str]) -> list[PropertyChange]:
    old = meta.old.inputs if meta.old else None
    new = meta.new.inputs if meta.new else None
    kinds = {path: d.diff_kind.value for path, d in (meta.detailed_diff or {}).items()}
    paths = list(kinds) or list(meta.diffs or [])
    replace_keys = set(meta.keys or [])
    out = []
    for path in paths:
        head, rest = _split_head(path)
        name = _snake(head) + rest  # the top level as pulumi_gcp spells arguments, the rest as Pulumi does
        before, after = _lookup(old, path), _lookup(new, path)
        hidden = _snake(head) in secret or SECRET in (before, after)
        forces = kinds.get(path, "").endswith("-replace") or head in replace_keys
        out.append(
            PropertyChange(
                name,
                SECRET if hidden and before is not None else _shown(before),
                SECRET if hidden and after is not None else _shown(after),
                hidden,
                forces,
            )
        )
    return out


class StepCollector:
    """An ``on_event`` callback keeping, per resource, the strongest step the engine reports."""

    def __init__(self) -> None:
        self.steps: dict[str, tuple[Action, StepEventMetadata]] = {}
        self._lock = threading.Lock()

    def __call__(self, event: EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is None or not is_ours(pre.metadata.type):
            return
        action = _ACTIONS.get(pre.metadata.op.value)
        if action is None:
            return
        name = resource_name(pre.metadata.urn)
        with self._lock:
            seen = self.steps.get(name)
            if (
                seen is None
                or _STRENGTH[action] > _STRENGTH[seen[0]]
                or (action == seen[0] and not (seen[1].diffs or seen[1].detailed_diff))
            ):
                self.steps[name] = (action, pre.metadata)

    def changes(self, declared: Sequence[Primitive], then: Sequence[ResourceChange] = ()) -> list[ResourceChange]:
        """Deletes first (in the engine's order), then every declared primitive, parents first,
        then ``then`` (steps bfctl runs itself, such as migrations), then the stack's other
        resources (the deployment's) in the engine's order.

        A declared primitive the engine reported no step for is unchanged.
        """
        by_id = {p.primitive_id(): p for p in declared}
        others = [
            ResourceChange(name, resource_type_name(meta.type), action, _properties(action, meta, frozenset()))
            for name, (action, meta) in self.steps.items()
            if name not in by_id
        ]
        out = [c for c in others if c.action == "delete"]
        for pid, primitive in by_id.items():
            step: tuple[Action, StepEventMetadata | None] = self.steps.get(pid, ("noop", None))
            action, meta = step
            props = _properties(action, meta, primitive.secret_properties) if meta is not None else []
            lost = _REPLACE_LOSES.get(primitive.resource_type, "") if action == "replace" else ""
            out.append(ResourceChange(pid, primitive.resource_type, action, props, reason=lost, primitive=primitive))
        return out + list(then) + [c for c in others if c.action != "delete"]


def _properties(action: Action, meta: StepEventMetadata, secret: frozenset[str]) -> list[PropertyChange]:
    """What a step changes: every input of a create or a delete, the differences of the rest."""
    if action == "create":
        return _inputs_change(meta.new.inputs if meta.new else None, True, secret)
    if action == "delete":
        return _inputs_change(meta.old.inputs if meta.old else None, False, secret)
    if action in ("update", "replace"):
        return _diff_changes(meta, secret)
    return []


class ProgressRelay:
    """An ``on_event`` callback reporting each resource's start, end or failure to ``Progress``."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.started: dict[str, Action] = {}
        self.finished: set[str] = set()
        self.replacing: dict[str, set[str]] = {}  # replace steps still to finish, per resource
        self.errors: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, event: EngineEvent) -> None:
        with self._lock:
            if event.diagnostic_event and event.diagnostic_event.severity == "error":
                diag = event.diagnostic_event
                key = resource_name(diag.urn) if diag.urn else ""
                self.errors.setdefault(key, []).append(diag.message.strip())
            steps: tuple[tuple[Any, Status], ...] = (
                (event.resource_pre_event, "started"),
                (event.res_outputs_event, "done"),
                (event.res_op_failed_event, "failed"),
            )
            for step, status in steps:
                if step is not None:
                    self._step(step.metadata, status)

    def _step(self, meta: StepEventMetadata, status: Status) -> None:
        action = _ACTIONS.get(meta.op.value)
        if not is_ours(meta.type) or action in (None, "noop"):
            return
        name = resource_name(meta.urn)
        if name in self.finished:
            return
        if name not in self.started:
            self.started[name] = action
            self.progress(name, action, "started", "")
            if action == "replace":
                self.replacing[name] = set(_REPLACE_STEPS)
        if status == "done" and name in self.replacing:
            self.replacing[name].discard(meta.op.value)
            if self.replacing[name]:
                return
        if status != "started":
            self.finished.add(name)
            message = "; ".join(self.errors.get(name, [])) if status == "failed" else ""
            self.progress(name, self.started[name], status, message)

    def finish(self) -> None:
        """Report as done what started and was not reported finished (after a successful run)."""
        for name, action in self.started.items():
            if name not in self.finished:
                self.finished.add(name)
                self.progress(name, action, "done", "")

    def error_summary(self) -> str:
        """Pulumi's error diagnostics, one line per resource (or general message)."""
        lines = []
        for name, messages in self.errors.items():
            text = " ".join(" ".join(messages).split())
            lines.append(f"  {name}: {text}" if name else f"  {text}")
        return "\n".join(lines)
