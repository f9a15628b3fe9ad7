"""Values the runtime injects about the environment the flow runs in.

Declared here as GLOBAL dependencies with empty defaults, so a flow can be built and tested
without bfctl; ``bfctl serve`` replaces them with what the provider applied.

Code that runs outside the dependency graph (an engine made when the flow module is imported,
as BuildFlow's ``engine(db, user, password)``) asks ``stack_outputs()`` instead, at its first
connection: the deployed container's ``$BUILDFLOW_OUTPUTS``, else what bfctl said before
importing the flow (``serve_stack``: how to find the stack it serves; ``read_only``: plan and
apply only read the flow, so nothing connects), else the ``buildflow.outputs`` entry point
(a flow run as a script, whose import comes before ``app.run()``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from buildflow.dependencies.scopes import Scope, dependency
from buildflow.deployed import OUTPUTS_ENV


class NotApplied(KeyError):
    """No applied infrastructure for a primitive. A ``KeyError``, so ``in`` and ``.get`` of the
    mapping work as for any other; its message says what to run."""

    def __str__(self) -> str:
        return str(self.args[0])


@dependency(Scope.GLOBAL)
class ResourceOutputs(Mapping[str, Mapping[str, Any]]):
    """Outputs of the applied infrastructure (host, port, names...), by primitive id."""

    def __init__(self, outputs: Mapping[str, Mapping[str, Any]] | None = None, target: str = "local") -> None:
        self._outputs = dict(outputs or {})
        self.target = target

    def __getitem__(self, primitive_id: str) -> Mapping[str, Any]:
        try:
            return self._outputs[primitive_id]
        except KeyError:
            raise NotApplied(
                f"no applied infrastructure for {primitive_id!r} on the {self.target} target: "
                "run `bfctl apply` (or `bfctl serve --apply`)"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)

    @classmethod
    def from_json(cls, text: str) -> ResourceOutputs:
        """The outputs ``$BUILDFLOW_OUTPUTS`` holds; ValueError when ``text`` is not that JSON."""
        try:
            data = json.loads(text)
            outputs, target = data["outputs"], data["target"]
            if not isinstance(outputs, dict) or not isinstance(target, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise ValueError(
                f'{OUTPUTS_ENV} is not the JSON the gcp target sets ({{"target": ..., "outputs": {{...}}}}); '
                "unset it to serve with the stack's recorded outputs"
            ) from None
        return cls(outputs, target)


#: Finds the served stack's outputs (starting what must run to reach them).
OutputsFinder = Callable[[], Mapping[str, Mapping[str, Any]]]


@dataclasses.dataclass
class _Stack:
    """The stack module-level code reaches: ``find`` is set by ``serve_stack``; ``read_only``
    sets ``reading`` (the flow is imported to be read); neither: imported outside bfctl."""

    target: str = "local"
    find: OutputsFinder | None = None
    reading: bool = False
    found: ResourceOutputs | None = None
    #: Whether something asked for a primitive the stack has not applied (it raised NotApplied).
    missed: bool = False


_STACK = _Stack()


def serve_stack(target: str, find: OutputsFinder) -> None:
    """Say, before the flow is imported to be served, how to find the stack's outputs: called
    once, at the first connection that needs them."""
    _STACK.target, _STACK.find, _STACK.reading, _STACK.found, _STACK.missed = target, find, False, None, False


def read_only(target: str = "local") -> None:
    """Say the flow is imported to be read (a plan), unless a stack to serve was given first."""
    if _STACK.find is None:
        _STACK.target, _STACK.reading = target, True


def imported_to_read() -> bool:
    """Whether the flow was imported only to be read: engines made at import then run nothing."""
    return _STACK.reading and not os.environ.get(OUTPUTS_ENV)


def stack_target() -> str:
    """The target the flow is served on (known without reading its outputs)."""
    if given := os.environ.get(OUTPUTS_ENV):
        return ResourceOutputs.from_json(given).target
    return _STACK.target


def missed(what: str) -> NotApplied:
    """Note that ``what`` (a primitive, named) was asked for before the stack applied it; returns
    the error to raise."""
    _STACK.missed = True
    return NotApplied(
        f"{what} is not applied on the {stack_target()} target, so what the flow made for it cannot "
        "connect: run `bfctl apply` first"
    )


def asked_before_applied() -> bool:
    """Whether code the flow ran (at import, say) asked for something the stack has not applied:
    ``serve --apply`` then imports it again once applied."""
    return _STACK.missed


#: Entry points, named by target, finding the stack a flow is served with when nothing said
#: which before its module ran (``python main.py``, whose import runs before ``app.run()``).
OUTPUTS_ENTRY_POINT_GROUP = "buildflow.outputs"


def _installed_finder() -> OutputsFinder | None:
    """The ``buildflow.outputs`` entry point of the target (bfctl's finds the project's default
    stack), unless the flow is imported only to be read; looked up at the first connection only."""
    if _STACK.reading:
        return None
    from importlib.metadata import entry_points

    found = list(entry_points(group=OUTPUTS_ENTRY_POINT_GROUP, name=_STACK.target))
    return found[0].load() if found else None


def stack_outputs() -> ResourceOutputs:
    """The outputs of the stack the flow is served with (found once per process).

    Raises ``LookupError`` when there is none: the flow was imported only to be read, or
    outside ``bfctl serve`` without bfctl installed.
    """
    if given := os.environ.get(OUTPUTS_ENV):
        return ResourceOutputs.from_json(given)
    if _STACK.find is None:
        _STACK.find = _installed_finder()
    if _STACK.find is None:
        raise LookupError(
            "no stack to connect to: module-level code reaches the infrastructure when the flow is "
            "served (`bfctl serve`, or `app.run()` with bfctl installed); `bfctl plan` and `apply` only read the flow"
        )
    if _STACK.found is None:
        _STACK.found = ResourceOutputs(_STACK.find(), _STACK.target)
    return _STACK.found


@dependency(Scope.GLOBAL)
class FlowCredentials:
    """Cloud credentials for dependencies (BuildFlow's flow dependency); None means the
    client libraries' defaults (Application Default Credentials on GCP)."""

    def __init__(self, gcp_credentials: Any = None, aws_credentials: Any = None) -> None:
        self.gcp_credentials = gcp_credentials
        self.aws_credentials = aws_credentials
