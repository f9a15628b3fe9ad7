"""A source that hands a consumer the same items again and again (BuildFlow's
``buildflow.io.local.pulse``): for demos, tests and heartbeats. Nothing to make."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from buildflow.io.primitive import Primitive, PrimitiveType, PrimitiveValidationError


@dataclasses.dataclass
class Pulse(Primitive):
    """Every ``pulse_interval_seconds``, the next of ``items`` (cycling forever)."""

    items: Iterable[Any]
    pulse_interval_seconds: float

    primitive_type = PrimitiveType.AGNOSTIC

    def __post_init__(self) -> None:
        self.items = list(self.items)
        if not self.items:
            raise PrimitiveValidationError("Pulse: items is empty, so there is nothing to send")
        if not isinstance(self.pulse_interval_seconds, int | float) or self.pulse_interval_seconds < 0:
            raise PrimitiveValidationError(
                f"Pulse: pulse_interval_seconds must be a number of seconds >= 0, got {self.pulse_interval_seconds!r}"
            )

    def primitive_id(self) -> str:
        return f"pulse:{id(self):x}"

    def desired_properties(self) -> dict[str, Any]:
        return {}
