"""How plans, progress and outputs look: styled on a terminal, plain lines in a pipe."""

from __future__ import annotations

import time
from typing import Any

from bfctl import console

_ACTIONS = {
    "create": ("+", "create", "green"),
    "update": ("~", "update", "yellow"),
    "replace": ("-/+", "replace", "magenta"),
    "delete": ("-", "delete", "red"),
    "noop": ("=", "no change", "dim"),
}
_PAST = {"create": "created", "update": "updated", "replace": "replaced", "delete": "deleted", "noop": "checked"}


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return repr(value)


def plan(plan: Any, *, verb: str = "apply") -> None:
    """One block per resource with its changed properties (old → new), then a summary."""
    console.info(f"Plan for stack `{plan.stack}` on the {plan.target} target:", "bold")
    for change in plan.changes:
        symbol, word, style = _ACTIONS[change.action]
        console.info(f"  {symbol:<3} {word:<9} {change.resource_type}  {change.resource_id}", style)
        if change.reason:
            console.info(f"        ({change.reason})", style)
        if change.action == "noop":
            continue
        for prop in change.changes:
            shown = prop.to_dict()
            if change.action in ("create", "delete"):
                text = f"        {prop.name}: {_show(shown['new'] if change.action == 'create' else shown['old'])}"
            else:
                text = f"        {prop.name}: {_show(shown['old'])} → {_show(shown['new'])}"
            if prop.forces_replace:
                text += "  (forces replace)"
            console.info(text, style)
    counts = plan.counts()
    console.info(
        f"Plan: {counts['create']} to create, {counts['update']} to update, {counts['replace']} to replace, "
        f"{counts['delete']} to delete, {counts['noop']} unchanged.",
        "bold",
    )
    if not plan.has_changes:
        console.info(f"No changes: nothing to {verb}.", "green")


class Progress:
    """Per-resource progress lines for apply and destroy, with how long each step took."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self.done = 0
        self.failed = 0

    def __call__(self, resource_id: str, action: str, status: str, message: str = "") -> None:
        if status == "started":
            self._started[resource_id] = time.monotonic()
            console.info(f"  … {action:<8} {resource_id}", "dim")
            return
        took = time.monotonic() - self._started.pop(resource_id, time.monotonic())
        if status == "done":
            self.done += 1
            note = f" — {message}" if message else ""
            console.info(f"  ✓ {_PAST.get(action, action)} {resource_id} ({took:.1f}s){note}", "green")
        else:
            self.failed += 1
            console.info(f"  ✗ {action} {resource_id} failed ({took:.1f}s): {message}", "red")


def outputs(values: dict[str, dict[str, Any]]) -> None:
    if not values:
        return
    console.info("Outputs:", "bold")
    for resource_id, fields in values.items():
        console.info(f"  {resource_id}", "cyan")
        for key, value in fields.items():
            console.info(f"    {key} = {_show(value)}")


#: The plan formats ``bfctl plan --format`` prints.
PLAN_FORMATS = ("text", "json", "markdown")


def _cell(text: str) -> str:
    """Text that stays inside one cell of a Markdown table and shows as written (no HTML, no table breaks)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    return escaped.replace("\r\n", "\n").replace("\n", "<br>")


def plan_markdown(plan: Any, notes: list[str], warnings: list[str], *, verb: str = "apply") -> str:
    """The plan as a pull-request comment shows it: the counts, a table of the resources that
    change (secrets as ``(secret)``, as in every other format), then the notes and warnings."""
    counts = plan.counts()
    lines = [
        f"### bfctl plan: stack `{plan.stack}` on the {plan.target} target",
        "",
        f"**{counts['create']} to create, {counts['update']} to update, {counts['replace']} to replace, "
        f"{counts['delete']} to delete, {counts['noop']} unchanged.**",
        "",
    ]
    changed = [c for c in plan.changes if c.action != "noop"]
    if changed:
        lines += ["| Action | Resource | Type | Changes |", "| --- | --- | --- | --- |"]
    else:
        lines.append(f"No changes: nothing to {verb}.")
    for change in changed:
        symbol, word, _ = _ACTIONS[change.action]
        details = [f"({change.reason})"] if change.reason else []
        for prop in change.changes:
            shown = prop.to_dict()
            if change.action in ("create", "delete"):
                text = f"{prop.name}: {_show(shown['new'] if change.action == 'create' else shown['old'])}"
            else:
                text = f"{prop.name}: {_show(shown['old'])} → {_show(shown['new'])}"
            details.append(text + (" (forces replace)" if prop.forces_replace else ""))
        cells = [f"{symbol} {word}", change.resource_id, change.resource_type, "\n".join(details)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if notes or warnings:
        lines.append("")
    lines += [f"- {_cell(note)}" for note in notes]
    lines += [f"- **Warning:** {_cell(warning)}" for warning in warnings]
    return "\n".join(lines)
