"""The ``local`` target: Cloud SQL primitives on embedded PostgreSQL servers on this machine.

Each ``CloudSQLInstance`` is one server under ``<project>/.buildflow/local/<stack>/<id>/``
listening on a loopback port chosen at apply time; databases and users are made in it. The
state records everything applied, so a plan after an interrupted apply shows what is left.
"""

from __future__ import annotations

import os
import re
from typing import Any

from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance, CloudSQLUser
from buildflow.io.primitive import Primitive
from providers.base import ApplyError, Outputs, Progress, Provider, UnsupportedPrimitiveError, no_progress
from providers.local import sql
from providers.local.postgres import ADMIN_USER, HOST, EmbeddedPostgres, LocalTargetError
from providers.plan import Plan, ResourceChange, Step, diff, steps
from providers.state import ResourceState, State

INSTANCE = CloudSQLInstance.resource_type
DATABASE = CloudSQLDatabase.resource_type
USER = CloudSQLUser.resource_type


def _dir_name(resource_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", resource_id)


class LocalProvider(Provider):
    target = "local"

    def __init__(self, project_dir: str | os.PathLike[str], stack: str = "dev") -> None:
        super().__init__(project_dir, stack)
        self.root = self.project_dir / ".buildflow" / "local" / self.stack

    # -- what the local target can make ----------------------------------------------------
    def check_supported(self, primitive: Primitive) -> None:
        if isinstance(primitive, CloudSQLInstance):
            if primitive.engine != "postgres":
                raise UnsupportedPrimitiveError(
                    f"CloudSQLInstance {primitive.primitive_id()!r} uses {primitive.database_version}: the local "
                    "target runs PostgreSQL only (an embedded server, no system install or Docker), and no "
                    "embedded MySQL or SQL Server exists to stand in. Use a CloudSQLDatabaseVersion.POSTGRES_* "
                    "version, or use the gcp target for this stack."
                )
        elif isinstance(primitive, CloudSQLUser):
            if primitive.user_name == ADMIN_USER:
                raise UnsupportedPrimitiveError(f"user name {ADMIN_USER!r} is the local target's administrator")
        elif not isinstance(primitive, CloudSQLDatabase):
            raise UnsupportedPrimitiveError(
                f"the local target cannot make {type(primitive).__name__} yet "
                "(it supports CloudSQLInstance, CloudSQLDatabase and CloudSQLUser)"
            )

    def desired_properties(self, primitive: Primitive) -> dict[str, Any]:
        properties = primitive.desired_properties()
        if isinstance(primitive, CloudSQLInstance):
            properties["status"] = "running"  # a stopped server plans as an update that starts it
        return properties

    # -- refresh -------------------------------------------------------------------------------
    def refresh(self) -> State:
        state = self.store.load()
        for record in [r for r in state.resources.values() if r.resource_type == INSTANCE]:
            server = self._server(record)
            if not server.is_initialized():
                self._forget(state, record.resource_id)
                continue
            port = server.running_port()
            record.properties["status"] = "stopped" if port is None else "running"
            if port is None:
                continue  # its databases and users cannot be checked until it runs
            self._set_port(state, record, port)
            with server.admin(port) as conn:
                for child in state.children_of(record.resource_id):
                    self._refresh_child(state, conn, child)
        for record in list(state.resources.values()):
            if any(p not in state.resources for p in record.parents):
                del state.resources[record.resource_id]
        return state

    def _refresh_child(self, state: State, conn: Any, record: ResourceState) -> None:
        if record.resource_type == DATABASE:
            if not sql.database_exists(conn, record.properties["database_name"]):
                del state.resources[record.resource_id]
        elif record.resource_type == USER:
            exists, verifier = sql.role_password(conn, record.properties["user_name"])
            if not exists:
                del state.resources[record.resource_id]
            else:
                record.properties["password"] = verifier

    # -- apply / destroy -------------------------------------------------------------------------
    def apply(self, plan: Plan, progress: Progress = no_progress) -> Outputs:
        with self.locked("apply"):
            self.check_plan(plan)
            state = self.refresh()
            self._execute(state, plan, progress)
            return {rid: dict(r.outputs) for rid, r in state.resources.items()}

    def destroy(self, progress: Progress = no_progress) -> Plan:
        with self.locked("destroy"):
            state = self.refresh()
            plan = diff(self.target, self.stack, [], state.resources, state.serial)
            self._execute(state, plan, progress)
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
            except Exception as exc:
                self.store.save(state)
                progress(rid, change.action, "failed", str(exc))
                raise ApplyError(change, step, exc) from exc
            self.store.save(state)
            if last[rid] == i:
                progress(rid, change.action, "done", message)

    def _step(self, state: State, step: Step, change: ResourceChange, doomed: set[str]) -> str:
        kind = change.resource_type
        if step == "delete":
            return self._delete(state, change.resource_id, doomed)
        primitive = change.primitive
        if kind == INSTANCE and isinstance(primitive, CloudSQLInstance):
            return self._put_instance(state, primitive)
        if kind == DATABASE and isinstance(primitive, CloudSQLDatabase):
            return self._put_database(state, primitive)
        if kind == USER and isinstance(primitive, CloudSQLUser):
            return self._put_user(state, primitive)
        raise LocalTargetError(f"the local target cannot {step} {kind} {change.resource_id!r}")

    # -- one resource at a time -------------------------------------------------------------------
    def _put_instance(self, state: State, instance: CloudSQLInstance) -> str:
        rid = instance.primitive_id()
        record = state.resources.get(rid)
        server = EmbeddedPostgres(self.root / _dir_name(rid))
        server.initialize()
        port = server.start(record.private.get("port") if record else None)
        with server.admin(port) as conn:
            sql.ensure_owner_role(conn)
            version = sql.server_version(conn)
        properties = self.desired_properties(instance)
        outputs = {"host": HOST, "port": port, "connection_name": instance.connection_name(), "server_version": version}
        private = {"directory": str(server.directory.relative_to(self.project_dir)), "port": port}
        self._record(state, instance, properties, outputs, private)
        self._set_port(state, state.resources[rid], port)
        major = version.split(".")[0]
        note = "" if instance.database_version == f"POSTGRES_{major}" else f"; declared {instance.database_version}"
        # Settings (tier, disks, flags, ...) mean nothing to a server on this machine: recorded only.
        return f"PostgreSQL {version} on {HOST}:{port}{note}"

    def _put_database(self, state: State, database: CloudSQLDatabase) -> str:
        server, port, instance = self._running(state, database.instance.primitive_id())
        with server.admin(port) as conn:
            made = sql.create_database(conn, database.database_name)
        outputs = {**self._endpoint(instance), "database": database.database_name}
        self._record(state, database, database.desired_properties(), outputs)
        return "created" if made else "already existed; recorded"

    def _put_user(self, state: State, user: CloudSQLUser) -> str:
        server, port, instance = self._running(state, user.instance.primitive_id())
        with server.admin(port) as conn:
            verifier = sql.set_login_role(conn, user.user_name, user.password)
        properties = {**user.desired_properties(), "password": verifier}
        self._record(state, user, properties, {**self._endpoint(instance), "user": user.user_name})
        return f"login role {user.user_name}"

    def _delete(self, state: State, rid: str, doomed: set[str]) -> str:
        """Delete one resource; one inside an instance deleted in this run only loses its record."""
        record = state.resources.get(rid)
        if record is None:
            return "already gone"
        if record.resource_type == INSTANCE:
            self._server(record).remove()
            self._forget(state, rid)
            return "server stopped, data deleted"
        instance = state.resources.get(record.parents[0]) if record.parents else None
        if instance is None or instance.resource_id in doomed or not self._server(instance).is_initialized():
            del state.resources[rid]
            return "goes with its instance"
        server, port, _ = self._running(state, instance.resource_id)
        with server.admin(port) as conn:
            if record.resource_type == DATABASE:
                sql.drop_database(conn, record.properties["database_name"])
            else:
                sql.drop_role(conn, lambda db: server.admin(port, db), record.properties["user_name"])
        del state.resources[rid]
        return "deleted"

    # -- serve support ---------------------------------------------------------------------------
    def ensure_running(self) -> Outputs:
        """Start every applied server that is stopped (after a reboot, say) from its data.

        Returns the outputs of the stack; a server that had to move to another port because
        its old one was taken has its new port recorded.
        """
        with self.locked("serve"):
            state = self.store.load()
            moved = False
            for record in [r for r in state.resources.values() if r.resource_type == INSTANCE]:
                server = self._server(record)
                if not server.is_initialized():
                    raise LocalTargetError(
                        f"{record.resource_id} was applied but its data directory {server.directory} is gone; "
                        "run `bfctl apply` to create it again"
                    )
                moved |= self._set_port(state, record, server.start(record.private.get("port")))
            if moved:
                self.store.save(state)
            return {rid: dict(r.outputs) for rid, r in state.resources.items()}

    def ensure_user(self, instance: CloudSQLInstance | str, user: str, password: str) -> bool:
        """Make ``user`` log in with ``password`` on an applied, running instance.

        For users named by a dependency (``SessionDep``) rather than declared as primitives;
        they are not recorded in the state and go away with the instance. Returns True when
        the role was created or its password changed.
        """
        rid = instance if isinstance(instance, str) else instance.primitive_id()
        if not user or len(user.encode()) > 63 or user == ADMIN_USER or user.startswith(("pg_", "cloudsql")):
            raise LocalTargetError(f"{user!r} cannot be a user name on the local target")
        record = self.store.load().resources.get(rid)
        if record is None or record.resource_type != INSTANCE:
            raise LocalTargetError(f"{rid} is not applied on the local target; run `bfctl apply` first")
        server = self._server(record)
        port = server.running_port()
        if port is None:
            raise LocalTargetError(f"the local server of {rid} is not running; call ensure_running() first")
        with server.admin(port) as conn:
            return sql.ensure_login_role(conn, user, password)

    # -- helpers ---------------------------------------------------------------------------------
    def _server(self, record: ResourceState) -> EmbeddedPostgres:
        return EmbeddedPostgres(self.project_dir / record.private["directory"])

    def _running(self, state: State, instance_id: str) -> tuple[EmbeddedPostgres, int, ResourceState]:
        record = state.resources.get(instance_id)
        if record is None:
            raise LocalTargetError(f"instance {instance_id} is not applied")
        server = self._server(record)
        port = server.start(record.private.get("port"))
        self._set_port(state, record, port)
        record.properties["status"] = "running"
        return server, port, record

    @staticmethod
    def _set_port(state: State, instance: ResourceState, port: int) -> bool:
        """Record ``port`` for the instance and everything in it; True when it moved."""
        moved = instance.private.get("port") != port
        instance.private["port"] = port
        for record in [instance, *state.children_of(instance.resource_id)]:
            record.outputs["port"] = port
        return moved

    @staticmethod
    def _endpoint(instance: ResourceState) -> dict[str, Any]:
        keys = ("host", "port", "connection_name")
        return {k: instance.outputs[k] for k in keys}

    @staticmethod
    def _record(
        state: State,
        primitive: Primitive,
        properties: dict[str, Any],
        outputs: dict[str, Any],
        private: dict[str, Any] | None = None,
    ) -> None:
        state.resources[primitive.primitive_id()] = ResourceState(
            resource_id=primitive.primitive_id(),
            resource_type=primitive.resource_type,
            properties=properties,
            secret_properties=sorted(primitive.secret_properties),
            parents=[p.primitive_id() for p in primitive.parents()],
            outputs=outputs,
            private=private or {},
        )

    @staticmethod
    def _forget(state: State, rid: str) -> None:
        """Drop a record and, with it, the records of everything inside it."""
        for child in state.children_of(rid):
            LocalProvider._forget(state, child.resource_id)
        state.resources.pop(rid, None)
