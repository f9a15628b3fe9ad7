"""``bfctl doctor``, and the preflight ``plan`` and ``apply`` run: what would fail, on one screen.

The checks are the target's (``Provider.preflight``); this module runs them and shows them,
one line each and its fix below a failed one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from bfctl import console
from bfctl.providers.checks import Check

#: Turns the preflight of ``plan`` and ``apply`` off, as ``--skip-preflight`` does.
SKIP_ENV = "BFCTL_SKIP_PREFLIGHT"
_MARKS = {
    "ok": ("✓", "green"),
    "fail": ("✗", "bold red"),
    "warn": ("!", "yellow"),
    "note": ("i", "cyan"),
    "unknown": ("?", "yellow"),
}
Line = Callable[[str, str | None], None]


def show(checks: Sequence[Check], target: str, stack: str, line: Line = console.info) -> None:
    """The checks, one line each, a failed one's fix below it, then a count."""
    line(f"Preflight of stack `{stack}` on the {target} target:", "bold")
    width = max((len(c.name) for c in checks), default=0)
    for check in checks:
        mark, style = _MARKS[check.status]
        line(f"  {mark} {check.name:<{width}}  {check.summary}", style)
        if check.fix:
            line(f"    {'':<{width}}  fix: {check.fix}", style)
    failed = sum(c.failed for c in checks)
    if not checks:
        line("Nothing to check.", "green")
    elif failed:
        line(f"{failed} of {len(checks)} checks failed: fix them, then run this command again.", "bold red")
    else:
        line(f"No check failed ({len(checks)} run).", "bold green")


def run(provider: Any, primitives: Sequence[Any]) -> bool:
    """``bfctl doctor``: show every check of applying ``primitives`` with ``provider``; True when none failed."""
    checks = provider.preflight(primitives)
    show(checks, provider.target, provider.stack)
    return not any(c.failed for c in checks)


def preflight_failed(provider: Any, primitives: Sequence[Any], skip: bool) -> bool:
    """The preflight of ``plan`` and ``apply``: True, its screen shown on stderr, when a check failed."""
    if skip or os.environ.get(SKIP_ENV, "") not in ("", "0"):
        return False
    checks = provider.preflight(primitives)
    if not any(c.failed for c in checks):
        return False
    show(checks, provider.target, provider.stack, _to_stderr)
    return True


def _to_stderr(text: str, style: str | None) -> None:
    """stdout may be a JSON plan (``plan --json``)."""
    console.progress(text)
