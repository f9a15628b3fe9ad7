"""Portable names are checked by the rules of the service each becomes on gcp, the strictest
of the targets, so a flow that plans locally also plans on gcp."""

from __future__ import annotations

from collections.abc import Callable

from buildflow.io.primitive import Primitive, PrimitiveValidationError

#: A valid project id, for checking names only: the targets use their own.
NAME_CHECK_PROJECT = "bfctl-local"


def check_as(portable: Primitive, make: Callable[[], object]) -> None:
    """Run ``make`` (which builds the gcp primitive, validating it); its refusal names ``portable``."""
    try:
        make()
    except PrimitiveValidationError as e:
        reason = str(e).partition(": ")[2] or str(e)
        raise PrimitiveValidationError(f"{type(portable).__name__}: {reason}") from None
