"""The plan model every target shares, and the diff that builds it.

A plan is what would change to make the recorded (refreshed) state match the declared
primitives. It may carry the primitives it was made from (apply needs their secret values),
but it never shows a secret: ``repr`` and ``to_json`` print ``(secret)`` instead.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from bfctl.providers.secrets import secret_matches

if TYPE_CHECKING:
    from bfctl.providers.state import ResourceState
    from buildflow.io.primitive import Primitive

Action = Literal["create", "update", "replace", "delete", "noop"]
SECRET = "(secret)"  # noqa: S105 - what a plan shows instead of a secret value
#: What replacing a resource of these types deletes: a replace is a delete then a create, and
#: none of them carries its data over, so apply asks for ``--allow-data-loss`` first.
LOSES_DATA = {
    "gcp.bigquery.Table": "its rows are deleted",
    "gcp.sql.DatabaseInstance": "its databases and their rows are deleted",
    "gcp.sql.Database": "its tables and their rows are deleted",
}
#: What stops a destroy of these types partway (after deleting the rest), by the property the gcp
#: plan names it by and the value that stops it: Pulumi's guards against deleting, read from the
#: stack's state when the resource is deleted, which ``destroy --force`` turns off first.
GUARDS: dict[str, tuple[str, bool, str]] = {
    "gcp.sql.DatabaseInstance": ("deletion_protection", True, "has deletion protection on"),
    "gcp.bigquery.Table": ("deletion_protection", True, "has deletion protection on (destroy_protection)"),
    "gcp.storage.Bucket": (
        "force_destroy",
        False,
        "cannot be deleted while it holds objects (force_destroy is off), and a sink may have written some",
    ),
}
#: Cloud SQL's own guard, in the instance's settings: Google refuses the delete, whatever the stack says.
GOOGLE_GUARD = "deletionProtectionEnabled"


@dataclasses.dataclass(frozen=True)
class PropertyChange:
    name: str
    old: Any
    new: Any
    secret: bool = False
    forces_replace: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; secret values are masked."""
        mask = (lambda v: None if v is None else SECRET) if self.secret else (lambda v: v)
        return {
            "name": self.name,
            "old": mask(self.old),
            "new": mask(self.new),
            "secret": self.secret,
            "forces_replace": self.forces_replace,
        }

    def __repr__(self) -> str:
        d = self.to_dict()
        return (
            f"PropertyChange(name={self.name!r}, old={d['old']!r}, new={d['new']!r}, "
            f"secret={self.secret}, forces_replace={self.forces_replace})"
        )


@dataclasses.dataclass
class ResourceChange:
    resource_id: str
    resource_type: str
    action: Action
    changes: list[PropertyChange] = dataclasses.field(default_factory=list)
    #: Why the action was chosen when no property says it (a replaced parent).
    reason: str = ""
    #: The declared primitive (None for a delete); apply reads its values from here.
    primitive: Primitive | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "resource_id": self.resource_id,
            "resource_type": self.resource_type,
            "action": self.action,
            "changes": [c.to_dict() for c in self.changes],
        }
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclasses.dataclass(frozen=True)
class Guard:
    """A resource a destroy stops at, and why; ``liftable`` when ``destroy --force`` may turn the
    guard off in the stack's state (else only an apply of the flow without it can)."""

    change: ResourceChange
    why: str
    liftable: bool = False

    @property
    def resource_id(self) -> str:
        return self.change.resource_id


@dataclasses.dataclass
class Plan:
    target: str
    stack: str
    changes: list[ResourceChange]
    #: Serial of the state file the plan was made from; apply refuses a plan made from an older one.
    state_serial: int = 0

    @property
    def has_changes(self) -> bool:
        return any(c.action != "noop" for c in self.changes)

    def counts(self) -> dict[str, int]:
        """How many resources each action touches, e.g. ``{"create": 2, "noop": 1, ...}``."""
        out = dict.fromkeys(("create", "update", "replace", "delete", "noop"), 0)
        for change in self.changes:
            out[change.action] += 1
        return out

    def data_losses(self) -> list[str]:
        """One sentence per replace that deletes data, e.g. ``replaces t: its rows are deleted``."""
        return [
            f"replaces {c.resource_id}: {LOSES_DATA[c.resource_type]}"
            for c in self.changes
            if c.action == "replace" and c.resource_type in LOSES_DATA
        ]

    def guarded(self) -> list[Guard]:
        """The resources this plan creates or deletes that a destroy cannot simply delete, each
        with why: deletion protection on, or a bucket that must be empty (see ``GUARDS``)."""
        out = []
        for change in self.changes:
            if change.action not in ("create", "delete") or change.resource_type not in GUARDS:
                continue
            name, stops, why = GUARDS[change.resource_type]
            values = {p.name: p.new if change.action == "create" else p.old for p in change.changes}
            if google_guarded(values.get("settings")):
                out.append(Guard(change, "has Cloud SQL's own deletion protection on (deletion_protection_enabled)"))
            elif values.get(name) == stops:
                out.append(Guard(change, why, liftable=True))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "stack": self.stack,
            "has_changes": self.has_changes,
            "summary": self.counts(),
            "resources": [c.to_dict() for c in self.changes],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The plan for machines (CI); secrets appear only as ``(secret)``."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False, default=str)


def google_guarded(settings: Any) -> bool:
    """Whether a Cloud SQL instance's settings (as the gcp plan shows them) turn on Google's own
    deletion protection, which only an apply of the flow with it off can lift."""
    return isinstance(settings, Mapping) and settings.get(GOOGLE_GUARD) is True


def order_by_parents(primitives: Sequence[Primitive]) -> list[Primitive]:
    """Primitives with every parent among them before its children, otherwise in declaration order."""
    ordered: list[Primitive] = []
    seen: set[str] = set()
    by_id = {p.primitive_id(): p for p in primitives}

    def visit(primitive: Primitive) -> None:
        pid = primitive.primitive_id()
        if pid in seen:
            return
        seen.add(pid)
        for parent in primitive.parents():
            if parent.primitive_id() in by_id:  # one not among them exists already
                visit(by_id[parent.primitive_id()])
        ordered.append(primitive)

    for primitive in primitives:
        visit(primitive)
    return ordered


def _values_equal(desired: Any, recorded: Any, secret: bool) -> bool:
    if secret:
        return isinstance(desired, str) and secret_matches(desired, recorded)
    return desired == recorded


def diff_properties(
    desired: Mapping[str, Any],
    recorded: Mapping[str, Any],
    secret: frozenset[str],
    replace: frozenset[str],
) -> list[PropertyChange]:
    """Property changes from ``recorded`` to ``desired`` (recorded secrets are verifiers)."""
    changes = []
    for name in list(desired) + [n for n in recorded if n not in desired]:
        new, old = desired.get(name), recorded.get(name)
        if not _values_equal(new, old, name in secret):
            changes.append(PropertyChange(name, old, new, name in secret, name in replace))
    return changes


def diff(
    target: str,
    stack: str,
    desired: Sequence[tuple[Primitive, Mapping[str, Any]]],
    recorded: Mapping[str, ResourceState],
    state_serial: int = 0,
) -> Plan:
    """Compare declared primitives (with the properties the target wants) to recorded state.

    ``desired`` must list parents before children. A changed property in the primitive's
    ``replace_properties`` makes a replace, and a replaced resource replaces its children.
    Recorded resources that are no longer declared are deleted. The changes come in the order
    apply works in: deletes first (children before parents), then the declared resources
    (parents before children).
    """
    changes: list[ResourceChange] = []
    declared = {p.primitive_id() for p, _ in desired}
    gone = [s for rid, s in recorded.items() if rid not in declared]
    for state in sorted(gone, key=lambda s: -_depth(s, recorded)):
        props = [PropertyChange(n, v, None, n in state.secret_properties, False) for n, v in state.properties.items()]
        changes.append(ResourceChange(state.resource_id, state.resource_type, "delete", props))
    replaced: set[str] = set()
    for primitive, properties in desired:
        rid = primitive.primitive_id()
        record = recorded.get(rid)
        kind = primitive.resource_type
        if record is None:
            props = [PropertyChange(n, None, v, n in primitive.secret_properties, False) for n, v in properties.items()]
            changes.append(ResourceChange(rid, kind, "create", props, primitive=primitive))
            continue
        props = diff_properties(
            properties, record.properties, primitive.secret_properties, primitive.replace_properties
        )
        replaced_parents = [p.primitive_id() for p in primitive.parents() if p.primitive_id() in replaced]
        if any(p.forces_replace for p in props) or replaced_parents:
            replaced.add(rid)
            reason = f"{replaced_parents[0]} is replaced" if replaced_parents else ""
            changes.append(ResourceChange(rid, kind, "replace", props, reason, primitive))
        else:
            changes.append(ResourceChange(rid, kind, "update" if props else "noop", props, primitive=primitive))
    return Plan(target, stack, changes, state_serial)


def _depth(state: ResourceState, recorded: Mapping[str, ResourceState]) -> int:
    parents = [recorded[p] for p in state.parents if p in recorded]
    return 1 + max((_depth(p, recorded) for p in parents), default=0)


Step = Literal["delete", "create", "update"]


def steps(plan: Plan) -> list[tuple[Step, ResourceChange]]:
    """The work apply does, in order: deletes (children first), then creates and updates.

    A replace is a delete of the old resource (with its children, before any of them is
    created again) followed by a create.
    """
    deletes = [c for c in plan.changes if c.action == "delete"]
    replaced = [c for c in plan.changes if c.action == "replace"]
    out: list[tuple[Step, ResourceChange]] = [("delete", c) for c in deletes + replaced[::-1]]
    for change in plan.changes:
        if change.action in ("create", "replace"):
            out.append(("create", change))
        elif change.action == "update":
            out.append(("update", change))
    return out
