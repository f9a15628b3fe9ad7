"""The interface every target implements: refresh, plan, apply, destroy, outputs.

Providers never print: they report through a ``Progress`` callback and raise errors whose
messages are ready for users, and the CLI renders both.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from bfctl.providers.checks import Check
from bfctl.providers.errors import ProviderError, UnsupportedPrimitiveError
from bfctl.providers.plan import Action, Guard, Plan, ResourceChange, diff, order_by_parents
from bfctl.providers.state import LockInfo, State, StateLock, StateStore, outputs_of
from buildflow.io.primitive import PortablePrimitive, Primitive, PrimitiveValidationError
from buildflow.io.unsupported import unsupported_message
from buildflow.secrets import Password, reveal

Status = Literal["started", "done", "failed"]
Outputs = dict[str, dict[str, Any]]


class Progress(Protocol):
    def __call__(self, resource_id: str, action: Action, status: Status, message: str = "") -> None: ...


def no_progress(resource_id: str, action: Action, status: Status, message: str = "") -> None:
    """The default ``Progress``: report nothing."""


class StalePlanError(ProviderError):
    """The state changed after the plan was made; applying it could undo someone's work."""


class ApplyError(ProviderError):
    """One step of apply failed. Steps before it are recorded in the state."""

    def __init__(self, change: ResourceChange, step: str, cause: BaseException) -> None:
        self.change, self.step = change, step
        super().__init__(
            f"{step} of {change.resource_id} failed: {cause}\n"
            "What was done before this step is recorded: plan again to see what is left, then apply to finish."
        )


@dataclasses.dataclass(frozen=True)
class DeployRequest:
    """What the command asks of a target that deploys the flow's service (``Provider.deploys``):
    the flow, its flags, and whether to deploy at all."""

    flow: Any
    #: The flow as the command was given it (``main:app``, ``app.py:app``).
    target: str
    #: ``memory``, ``public``, ``ingress``, ``env``, ``workers``: None where not given.
    flags: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: An image to run instead of building one (``--image``).
    image: str | None = None
    #: False keeps the service on the image it runs (``--no-deploy``, ``serve --apply``).
    deploy: bool = True
    #: Where lines about the image go (building, pushing, "no build").
    say: Callable[[str], None] = lambda _line: None
    #: What the flow uses without managing it (the target says which of them exist already).
    unmanaged: tuple[Primitive, ...] = ()
    #: What the flow's dependencies push to (``SinkDependencyBuilder``) and keep objects in
    #: (``BucketDependencyBuilder``), managed or not.
    dependency_sinks: tuple[Primitive, ...] = ()
    dependency_buckets: tuple[Primitive, ...] = ()
    #: The tables of its ``AnalysisQuery`` dependencies.
    dependency_queries: tuple[Primitive, ...] = ()


class Provider(abc.ABC):
    """One target (``local``, ``gcp``) for one stack of one project."""

    target: ClassVar[str]
    #: Whether the target runs the flow's service itself (``bfctl apply`` builds and deploys it),
    #: and so needs the command's ``DeployRequest``.
    deploys: ClassVar[bool] = False

    def __init__(self, project_dir: str | os.PathLike[str], stack: str = "dev") -> None:
        self.store = StateStore(Path(project_dir), self.target, stack)
        self._lock: StateLock | None = None

    @classmethod
    def for_command(
        cls,
        project_dir: str | os.PathLike[str],
        stack: str,
        options: Mapping[str, str | None],
        ask_passphrase: Callable[[], str] | None,
        deploy: DeployRequest | None,
    ) -> Provider:
        """The provider a command uses. ``options`` are the target's flags (``--gcp-project``),
        None where not given; ``ask_passphrase`` asks the terminal for a secret the target needs
        (None where nobody can answer); ``deploy`` is what the command asks of the flow's service
        (see ``deploys``). A target takes what it has a use for: nothing, by default."""
        return cls(project_dir, stack)

    @property
    def project_dir(self) -> Path:
        return self.store.project_dir

    @property
    def stack(self) -> str:
        return self.store.stack

    @contextlib.contextmanager
    def locked(self, command: str, *, break_lock: bool = False) -> Iterator[LockInfo]:
        """Hold the stack's lock for the block (re-entrant within this provider).

        Hold it across plan and apply so nobody changes the stack in between. Raises
        ``StateLockedError`` naming the holder when another command has it.
        """
        if self._lock is not None and self._lock.info is not None:
            yield self._lock.info
            return
        lock = self.store.lock(command, break_lock=break_lock)
        info = lock.acquire()
        self._lock = lock
        try:
            yield info
        finally:
            self._lock = None
            lock.release()

    # -- what the target wants -------------------------------------------------------------
    def check_supported(self, primitive: Primitive) -> None:
        """Raise ``UnsupportedPrimitiveError`` when this target cannot make ``primitive``."""

    @abc.abstractmethod
    def portables(self, primitives: Sequence[Primitive]) -> Callable[[Primitive], list[Primitive]]:
        """What this target makes for each of ``primitives``, which include portable ones
        (``bfctl.providers.portables``): parents first, the primitive itself when not portable."""

    def on_target(self, primitives: Sequence[Primitive]) -> list[Primitive]:
        """``primitives`` with each portable one replaced by what this target makes for it.

        Raises ``UnsupportedPrimitiveError`` for a primitive bfctl does not support.
        """
        for primitive in primitives:
            if (message := unsupported_message(primitive)) is not None:
                raise UnsupportedPrimitiveError(message)
        if not any(isinstance(p, PortablePrimitive) for p in primitives):
            return list(primitives)
        made_for = self.portables(primitives)
        return [made for primitive in primitives for made in made_for(primitive)]

    def desired_properties(self, primitive: Primitive) -> dict[str, Any]:
        """The properties this target plans for ``primitive`` (the primitive's, by default)."""
        return primitive.desired_properties()

    def declared(self, primitives: Sequence[Primitive]) -> list[tuple[Primitive, dict[str, Any]]]:
        """Validate ``primitives`` for this target (portable ones replaced by what it makes for
        them); parents first, duplicates refused, and so is a parent missing that the target does
        not expect to exist."""
        by_id: dict[str, Primitive] = {}
        for primitive in self.on_target(primitives):
            primitive.validate()
            self.check_supported(primitive)
            pid = primitive.primitive_id()
            other = by_id.setdefault(pid, primitive)
            if other is not primitive and other.desired_properties() != primitive.desired_properties():
                raise PrimitiveValidationError(
                    f"two different primitives have the id {pid!r} "
                    f"({type(other).__name__} and {type(primitive).__name__}); give them distinct names"
                )
            other.stands_for = tuple(dict.fromkeys((*other.stands_for, *primitive.stands_for)))  # one made for both
        for primitive in by_id.values():
            for parent in primitive.parents():
                if parent.primitive_id() not in by_id and not self.expected_to_exist([parent]):
                    raise PrimitiveValidationError(
                        f"{type(primitive).__name__} {primitive.primitive_id()!r} needs "
                        f"{type(parent).__name__} {parent.primitive_id()!r}, which is not managed: "
                        "add it to app.manage(...)"
                    )
        ordered = order_by_parents(list(by_id.values()))
        return [(p, self.desired_properties(p)) for p in ordered]

    # -- the interface ---------------------------------------------------------------------
    @abc.abstractmethod
    def refresh(self) -> State:
        """The recorded state corrected by what really exists (not saved)."""

    def plan(self, primitives: Sequence[Primitive]) -> Plan:
        """What apply would do to make the stack match ``primitives``."""
        desired = self.declared(primitives)
        state = self.refresh()
        return diff(self.target, self.stack, desired, state.resources, state.serial)

    @abc.abstractmethod
    def apply(self, plan: Plan, progress: Progress = no_progress) -> Outputs:
        """Carry out ``plan``; returns the outputs of every resource of the stack."""

    @abc.abstractmethod
    def destroy(self, progress: Progress = no_progress) -> Plan:
        """Delete everything the stack made (and only that); returns what was deleted."""

    def outputs(self) -> Outputs:
        """Outputs recorded by the last apply, per primitive id (never secrets)."""
        return outputs_of(self.store.load())

    def password_of(self, password: Password) -> str:
        """The value of a password the flow declares, from where this target keeps secrets (the
        environment, by default), for what bfctl itself runs against the stack (migrations)."""
        return reveal(password)

    def preflight(self, primitives: Sequence[Primitive]) -> list[Check]:
        """What would make applying ``primitives`` fail, found before anything changes (``bfctl
        doctor``; plan and apply stop on a failed check): nothing, by default."""
        return []

    # -- what the commands say before changing the stack --------------------------------------
    def apply_warnings(self, primitives: Sequence[Primitive]) -> list[str]:
        """What applying ``primitives`` on this target costs or cannot do, said with the plan
        (nothing, by default)."""
        return []

    def destroy_warnings(self, plan: Plan) -> list[str]:
        """What destroying the stack takes with it beyond what ``plan`` lists (nothing, by default)."""
        return []

    def guarded(self, plan: Plan) -> list[Guard]:
        """The resources ``plan`` creates or deletes that would stop a destroy partway (none, by
        default: a target whose resources have no such guard)."""
        return []

    def lift_guards(self, resource_ids: Sequence[str]) -> None:
        """Turn off what would stop ``destroy`` at these resources (``guarded``'s): none, by default."""

    # -- primitives the flow uses without managing them ------------------------------------
    def expected_to_exist(self, used: Sequence[Primitive]) -> list[Primitive]:
        """Of the primitives the flow uses without managing them, those this target leaves alone.

        On a cloud they exist already (BuildFlow's rule): they are neither planned nor made, and
        the plan says they are expected. A target that makes them returns fewer (see ``make_missing``).
        """
        return list(used)

    def existing_outputs(self, primitives: Sequence[Primitive]) -> Outputs:
        """The outputs serving hands to dependencies for ``primitives``, which exist without this
        stack (``expected_to_exist``): what their identity says, as applied ones' would (none, by default)."""
        return {}

    def make_missing(self, primitives: Sequence[Primitive]) -> list[ResourceChange]:
        """Make, as apply would, those of ``primitives`` that serving needs and that this target
        makes on first use; returns what was made (a cloud makes nothing when serving)."""
        return []

    # -- serving -----------------------------------------------------------------------------
    def use_stack_secrets(self, services: Sequence[Any] = ()) -> None:
        """Make the flow's Secrets, read in this process, take this stack's values, and make the
        session keys of ``services``' middleware (the environment's values, by default: nothing to do)."""

    def ensure_running(self, started: Callable[[str], None] = lambda _what: None) -> Outputs:
        """The outputs to serve with, once what the stack runs itself is up (a target whose
        services run elsewhere has nothing to start: the recorded outputs). ``started`` hears of
        each stopped server started, so the command can say so (it takes seconds, and moves ports)."""
        return self.outputs()

    def client_environment(self) -> dict[str, str]:
        """Environment variables that point Google's own client libraries, made by the flow's
        code (``storage.Client()``), at what this target runs for the stack (none: a cloud's
        clients need nothing)."""
        return {}

    def recorded_plan(self, primitives: Sequence[Primitive]) -> Plan:
        """What serving compares the flow with; a target whose plan is costly (the network, a
        passphrase) plans against what its last apply recorded instead."""
        return self.plan(primitives)

    def check_plan(self, plan: Plan) -> None:
        """Refuse a plan for another stack, or one made before the state last changed."""
        if (plan.target, plan.stack) != (self.target, self.stack):
            raise StalePlanError(f"this plan is for {plan.target}/{plan.stack}, not {self.target}/{self.stack}")
        serial = self.store.load().serial
        if plan.state_serial != serial:
            raise StalePlanError(
                f"the state changed since this plan was made (serial {plan.state_serial} → {serial}); plan again"
            )
