"""The sink that keeps nothing (BuildFlow's default when a collector has no sink)."""

from __future__ import annotations

import dataclasses
from typing import Any

from buildflow.io.primitive import Primitive, PrimitiveType


@dataclasses.dataclass
class Empty(Primitive):
    """Rows written here are discarded; there is no infrastructure to make."""

    primitive_type = PrimitiveType.EMPTY

    def primitive_id(self) -> str:
        return "empty"

    def desired_properties(self) -> dict[str, Any]:
        return {}
