"""What the local target knows about one family of resources (Cloud SQL, DuckDB tables, ...).

``LocalProvider`` plans, orders and records; a family makes, checks and removes its own
resources, and starts the services they need when serving.
"""

from __future__ import annotations

import abc
import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from bfctl.providers.state import ResourceState, State
from buildflow.io.primitive import Primitive
from buildflow.storage import durable

if TYPE_CHECKING:
    from collections.abc import Callable

    from bfctl.providers.local.provider import LocalProvider


def dir_name(resource_id: str) -> str:
    """A resource id as a file or directory name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", resource_id)


def forget(state: State, rid: str) -> None:
    """Drop a record and, with it, the records of everything inside it."""
    for child in state.children_of(rid):
        forget(state, child.resource_id)
    state.resources.pop(rid, None)


class Family(abc.ABC):
    #: The primitive classes this family makes.
    primitive_types: ClassVar[tuple[type[Primitive], ...]]

    def __init__(self, provider: LocalProvider) -> None:
        self.provider = provider

    @property
    def project_dir(self) -> Path:
        return self.provider.project_dir

    @property
    def root(self) -> Path:
        """``<project>/.buildflow/local/<stack>``: where the stack's local data lives."""
        return self.provider.root

    @property
    def resource_types(self) -> frozenset[str]:
        return frozenset(t.resource_type for t in self.primitive_types)

    def relative(self, path: Path) -> str:
        """``path`` relative to the project when it is inside it (state stays movable)."""
        try:
            return str(path.relative_to(self.project_dir))
        except ValueError:
            return str(path)

    def absolute(self, path: str) -> Path:
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.project_dir / candidate

    def make_folder(self, state: State, resource_id: str, folder: Path) -> tuple[list[str], bool]:
        """Make ``folder`` and its missing parents. Returns the folders the resource made (those
        of earlier applies too, deepest first, for ``remove_made_folders``) and whether any was
        missing now."""
        known = state.resources.get(resource_id)
        made = list(known.private.get("made_dirs", [])) if known else []
        missing = [d for d in [folder, *folder.parents] if not d.exists()]
        durable.make_dirs(folder)
        return made + [self.relative(d) for d in missing], bool(missing)

    def remove_made_folders(self, rec: ResourceState) -> None:
        """Remove the folders ``make_folder`` made for ``rec`` that are empty now."""
        for made in rec.private.get("made_dirs", []):  # deepest first
            with contextlib.suppress(OSError):
                self.absolute(made).rmdir()

    def check_supported(self, primitive: Primitive) -> None:
        """Raise ``UnsupportedPrimitiveError`` for a primitive of ours this target cannot make."""

    def desired_properties(self, primitive: Primitive) -> dict[str, Any]:
        return primitive.desired_properties()

    def implied(self, primitives: list[Primitive]) -> list[Primitive]:
        """Resources the declared ones need that nobody declares (an emulator)."""
        return []

    def refresh(self, state: State) -> None:
        """Correct the records of this family by what really exists."""

    @abc.abstractmethod
    def put(self, state: State, primitive: Primitive) -> str:
        """Create or update ``primitive`` (idempotent: an interrupted apply runs it again)."""

    @abc.abstractmethod
    def delete(self, state: State, record: ResourceState, doomed: set[str]) -> str:
        """Delete a recorded resource; ``doomed`` are the ids deleted in the same run."""

    def ensure_running(self, state: State, started: Callable[[str], None]) -> bool:
        """Start what serving needs, telling ``started`` of each stopped server it starts; True
        when the state changed (a new port)."""
        return False

    def client_environment(self, state: State) -> dict[str, str]:
        """The variables that point Google's own client libraries at what this family runs."""
        return {}
