"""What a target's preflight found: one line per check, and for a failed one the fix.

``bfctl doctor`` shows every check; ``plan`` and ``apply`` run the same checks before they
change anything and stop on a failed one, so a first deploy fails in seconds with the command
or setting that fixes it rather than half-way through.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

#: ``ok`` passed; ``fail`` stops plan and apply; ``warn`` may fail later; ``note`` is worth
#: knowing; ``unknown`` could not be checked (an API not enabled, no answer in time).
Status = Literal["ok", "fail", "warn", "note", "unknown"]


@dataclasses.dataclass(frozen=True)
class Check:
    """One check's outcome: ``summary`` says what was seen, ``fix`` (a command or a setting) what to do."""

    name: str
    status: Status
    summary: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"
