"""The base of every primitive: a declaration of one piece of infrastructure.

Primitives are plain data. They name the resource, state the properties it should have and
which of those are secret or force a replace; the providers read that and do the work, so
importing a flow module never touches the network or the disk.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Callable
from typing import Any, ClassVar


class PrimitiveType(enum.Enum):
    """Where a primitive lives (BuildFlow 0.3 members and values)."""

    PORTABLE = "portable"
    GCP = "gcp"
    AWS = "aws"
    AZURE = "azure"
    LOCAL = "local"
    EMPTY = "empty"
    AGNOSTIC = "agnostic"


class PrimitiveValidationError(ValueError):
    """A primitive was declared with values its cloud would refuse."""


def closest_name_hint(name: str, valid: list[str] | frozenset[str]) -> str:
    """``" Did you mean `x`?"`` for a misspelt keyword, or an empty string."""
    match = difflib.get_close_matches(name, sorted(valid), n=1)
    return f" Did you mean `{match[0]}`?" if match else ""


class Primitive:
    """One declared resource. Subclasses are dataclasses whose fields are the constructor."""

    primitive_type: ClassVar[PrimitiveType] = PrimitiveType.AGNOSTIC
    #: Provider-facing type name, e.g. ``"gcp.sql.DatabaseInstance"``.
    resource_type: ClassVar[str] = ""
    #: Properties whose values must never be shown or stored in plain text.
    secret_properties: ClassVar[frozenset[str]] = frozenset()
    #: Properties that cannot change in place: a change means delete and create again.
    replace_properties: ClassVar[frozenset[str]] = frozenset()
    #: Keywords accepted by :meth:`options`, with their defaults.
    option_defaults: ClassVar[dict[str, Any]] = {}

    _managed: bool = False
    #: Ids of the portable primitives this one was made for by a target's mapping
    #: (``providers.portables``): its outputs are recorded under those ids too.
    stands_for: tuple[str, ...] = ()

    def primitive_id(self) -> str:
        """Stable id of the resource; state and plans are keyed by it."""
        raise NotImplementedError(f"{type(self).__name__} must define primitive_id()")

    def enable_managed(self) -> None:
        """Mark the primitive as created and destroyed by ``bfctl`` (``Flow.manage`` calls it)."""
        self._managed = True

    def options(self, **kwargs: Any) -> Primitive:
        """Set optional settings fluently; returns ``self`` as in BuildFlow."""
        for name, value in kwargs.items():
            if name not in self.option_defaults:
                valid = ", ".join(sorted(self.option_defaults)) or "none"
                raise TypeError(
                    f"{type(self).__name__}.options() got an unexpected keyword `{name}`."
                    f"{closest_name_hint(name, list(self.option_defaults))} Valid options: {valid}."
                )
            setattr(self, name, value)
        return self

    def cloud_console_url(self) -> str | None:
        """Where to look at the resource in its cloud's console, when it has one."""
        return None

    def desired_properties(self) -> dict[str, Any]:
        """The properties the resource should have, as plain JSON-able values."""
        raise NotImplementedError(f"{type(self).__name__} must define desired_properties()")

    def parents(self) -> list[Primitive]:
        """Primitives this one lives in (a database's instance): created first, deleted last."""
        return []

    def validate(self) -> None:
        """Raise :class:`PrimitiveValidationError` when a value breaks the cloud's rules."""

    def dependency(self) -> Callable[[], Primitive]:
        """An injectable that yields this primitive (never cached, as BuildFlow's NO_SCOPE)."""
        from buildflow.dependencies import Scope, dependency

        def provide() -> Primitive:
            return self

        provide.__name__ = f"{type(self).__name__}Dependency"
        return dependency(Scope.NO_SCOPE)(provide)


class GCPPrimitive(Primitive):
    """A primitive that lives in Google Cloud."""

    primitive_type: ClassVar[PrimitiveType] = PrimitiveType.GCP


class LocalPrimitive(Primitive):
    """A primitive that lives on this machine (files, DuckDB databases)."""

    primitive_type: ClassVar[PrimitiveType] = PrimitiveType.LOCAL


class PortablePrimitive(Primitive):
    """A primitive each target makes with its own service (``AnalysisTable``: BigQuery on gcp)."""

    primitive_type: ClassVar[PrimitiveType] = PrimitiveType.PORTABLE


class AWSPrimitive(Primitive):
    """A primitive that lives in AWS (declared for BuildFlow compatibility; bfctl makes none)."""

    primitive_type: ClassVar[PrimitiveType] = PrimitiveType.AWS


class AzurePrimitive(Primitive):
    """A primitive that lives in Azure (BuildFlow declared the type; it had none)."""

    primitive_type: ClassVar[PrimitiveType] = PrimitiveType.AZURE


# BuildFlow's own spellings of the base classes, kept so its imports keep working.
PortablePrimtive = PortablePrimitive
GCPPrimtive = GCPPrimitive
AWSPrimtive = AWSPrimitive
AzurePrimtive = AzurePrimitive
LocalPrimtive = LocalPrimitive
