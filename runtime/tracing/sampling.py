"""Which traces are sampled (exported), as OpenTelemetry's standard variables say.

``OTEL_TRACES_SAMPLER``: ``parentbased_always_on`` (the default), ``parentbased_always_off``,
``parentbased_traceidratio``, ``always_on``, ``always_off`` or ``traceidratio``;
``OTEL_TRACES_SAMPLER_ARG`` is the ratio (default 1.0). "parentbased" follows the caller's
decision when its header carries one (Cloud Run's front end sends ``o=1`` on the requests it
samples), and uses the rest of the rule otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from bfctl.runtime.errors import StartupError

SAMPLER_VARIABLE = "OTEL_TRACES_SAMPLER"
RATIO_VARIABLE = "OTEL_TRACES_SAMPLER_ARG"
_RULES = ("always_on", "always_off", "traceidratio")
_BOUND = 1 << 64


@dataclasses.dataclass(frozen=True, slots=True)
class Sampler:
    ratio: float = 1.0
    follow_parent: bool = True

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Sampler:
        name = environ.get(SAMPLER_VARIABLE, "").strip().lower() or "parentbased_always_on"
        rule = name.removeprefix("parentbased_")
        if rule not in _RULES:
            choices = ", ".join([*_RULES, *(f"parentbased_{r}" for r in _RULES)])
            raise StartupError(f"{SAMPLER_VARIABLE}={name!r}: use one of {choices}")
        if rule == "traceidratio":
            raw = environ.get(RATIO_VARIABLE, "1.0").strip()
            try:
                ratio = float(raw)
            except ValueError:
                ratio = -1.0
            if not 0.0 <= ratio <= 1.0:
                raise StartupError(f"{RATIO_VARIABLE}={raw!r}: use a ratio from 0 to 1, e.g. 0.1")
        else:
            ratio = 1.0 if rule == "always_on" else 0.0
        return cls(ratio, name.startswith("parentbased_"))

    def sampled(self, trace_id: int, parent: bool | None) -> bool:
        """The caller's decision when followed and given, else the trace id's low 64 bits
        against the ratio (every service of a trace decides alike)."""
        if parent is not None and self.follow_parent:
            return parent
        return (trace_id & (_BOUND - 1)) < self.ratio * _BOUND
