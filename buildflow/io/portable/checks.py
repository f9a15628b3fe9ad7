"""Portable names are checked by the rules of the service each becomes on gcp, the strictest
of the targets, so a flow that plans locally also plans on gcp."""

from __future__ import annotations

from collections.abc import Callable

from buildflow.io.primitive import Primitive, PrimitiveValidationError

#: A valid project id, for checking names only: the targets use their own.
NAME_CHECK_PROJECT = "bfctl-local"


def check_as(portable: Primitive, make: Callable[[], object], field: tuple[str, str] | None = None) -> None:
    """Run ``make`` (which builds the gcp primitive, validating it); its refusal names ``portable``,
    and ``field`` (the gcp primitive's name for it, the portable's) by the portable's name."""
    try:
        make()
    except PrimitiveValidationError as e:
        reason = str(e).partition(": ")[2] or str(e)
        if field is not None:
            reason = reason.replace(*field)
        raise PrimitiveValidationError(f"{type(portable).__name__}: {reason}") from None
