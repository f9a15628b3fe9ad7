"""Cloud SQL on the local target: each ``CloudSQLInstance`` is an embedded PostgreSQL server.

The server lives under ``<project>/.buildflow/local/<stack>/<id>/`` and listens on a loopback
port chosen at apply time; databases, users and tables are made in it. Sink writers log in as
``buildflow_sink``, a member of the owner role like every Cloud SQL user, whose password is
in the server's directory (mode 0600), never in the state or the outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bfctl.providers.connection_budget import max_connections_flag
from bfctl.providers.errors import UnsupportedPrimitiveError
from bfctl.providers.local import sql
from bfctl.providers.local.errors import LocalTargetError
from bfctl.providers.local.family import Family, dir_name, forget
from bfctl.providers.local.net import HOST
from bfctl.providers.local.postgres import ADMIN_USER, EmbeddedPostgres
from bfctl.providers.state import ResourceState, State, record
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance, CloudSQLTable, CloudSQLUser
from buildflow.io.primitive import Primitive
from buildflow.storage.engines import Engine

INSTANCE = CloudSQLInstance.resource_type
DATABASE = CloudSQLDatabase.resource_type
USER = CloudSQLUser.resource_type
TABLE = CloudSQLTable.resource_type
SINK_USER = "buildflow_sink"
#: The status of an instance recorded before its server is made: an apply interrupted while it
#: made it (Ctrl+C during initdb, say) leaves a record that apply finishes and destroy removes.
INCOMPLETE = "incomplete"
_RESERVED_USERS = (ADMIN_USER, SINK_USER)


def _server_settings(instance: CloudSQLInstance) -> dict[str, int]:
    """The database flags the local server honours: ``max_connections``, so that a flow's connection
    budget meets the same limit here as on Cloud SQL."""
    flag = max_connections_flag(instance)
    return {} if flag is None else {"max_connections": flag}


class CloudSQLFamily(Family):
    primitive_types = (CloudSQLInstance, CloudSQLDatabase, CloudSQLUser, CloudSQLTable)

    def check_supported(self, primitive: Primitive) -> None:
        if isinstance(primitive, CloudSQLInstance) and primitive.engine != "postgres":
            raise UnsupportedPrimitiveError(
                f"CloudSQLInstance {primitive.primitive_id()!r} uses {primitive.database_version}: the local "
                "target runs PostgreSQL only (an embedded server, no system install or Docker), and no "
                "embedded MySQL or SQL Server exists to stand in. Use a CloudSQLDatabaseVersion.POSTGRES_* "
                "version, or use the gcp target for this stack."
            )
        if isinstance(primitive, CloudSQLUser) and primitive.user_name in _RESERVED_USERS:
            raise UnsupportedPrimitiveError(f"user name {primitive.user_name!r} is the local target's own")

    def desired_properties(self, primitive: Primitive) -> dict[str, Any]:
        properties = primitive.desired_properties()
        if isinstance(primitive, CloudSQLInstance):
            properties["status"] = "running"  # a stopped server plans as an update that starts it
        if isinstance(primitive, CloudSQLUser):
            # A Secret not generated yet stays a Secret: it matches no recorded verifier, so the
            # plan shows the change, and apply generates it.
            properties["password"] = self.provider.secrets.lookup(primitive.password) or primitive.password
        return properties

    # -- refresh -------------------------------------------------------------------------------
    def refresh(self, state: State) -> None:
        for instance in [r for r in state.resources.values() if r.resource_type == INSTANCE]:
            if instance.properties.get("status") == INCOMPLETE:
                continue  # nothing in it to check: it plans as an update that finishes it
            server = self.server(instance)
            if not server.is_initialized():
                forget(state, instance.resource_id)
                continue
            port = server.running_port()
            instance.properties["status"] = "stopped" if port is None else "running"
            if port is None:
                continue  # what is inside cannot be checked until it runs
            self.set_port(state, instance, port)
            with server.admin(port) as conn:
                for child in state.children_of(instance.resource_id):
                    self._refresh_child(state, conn, child)
            for database in [r for r in state.children_of(instance.resource_id) if r.resource_type == DATABASE]:
                tables = [t for t in state.children_of(database.resource_id) if t.resource_type == TABLE]
                if tables:
                    with server.admin(port, database.properties["database_name"]) as conn:
                        for table in tables:
                            if sql.table_columns(conn, table.properties["table_name"]) is None:
                                del state.resources[table.resource_id]

    @staticmethod
    def _refresh_child(state: State, conn: Any, child: ResourceState) -> None:
        if child.resource_type == DATABASE:
            if not sql.database_exists(conn, child.properties["database_name"]):
                forget(state, child.resource_id)
        elif child.resource_type == USER:
            exists, verifier = sql.role_password(conn, child.properties["user_name"])
            if not exists:
                del state.resources[child.resource_id]
            else:
                child.properties["password"] = verifier

    # -- apply -----------------------------------------------------------------------------------
    def put(self, state: State, primitive: Primitive) -> str:
        if isinstance(primitive, CloudSQLInstance):
            return self._put_instance(state, primitive)
        if isinstance(primitive, CloudSQLDatabase):
            return self._put_database(state, primitive)
        if isinstance(primitive, CloudSQLUser):
            return self._put_user(state, primitive)
        if isinstance(primitive, CloudSQLTable):
            return self._put_table(state, primitive)
        raise LocalTargetError(f"the local target cannot make {type(primitive).__name__}")

    def _put_instance(self, state: State, instance: CloudSQLInstance) -> str:
        rid = instance.primitive_id()
        known = state.resources.get(rid)
        server = EmbeddedPostgres(self.root / dir_name(rid))
        if known is None:
            properties = {**self.desired_properties(instance), "status": INCOMPLETE}
            record(state, instance, properties, {}, {"directory": self.relative(server.directory)})
            self.provider.store.save(state)
        server.initialize()
        port = server.start(known.private.get("port") if known else None, _server_settings(instance))
        with server.admin(port) as conn:
            sql.ensure_owner_role(conn)
            version = sql.server_version(conn)
        outputs = {"host": HOST, "port": port, "connection_name": instance.connection_name(), "server_version": version}
        private = {"directory": self.relative(server.directory), "port": port}
        self.set_port(state, record(state, instance, self.desired_properties(instance), outputs, private), port)
        major = version.split(".")[0]
        note = "" if instance.database_version == f"POSTGRES_{major}" else f"; declared {instance.database_version}"
        # Other settings (tier, disks, flags, ...) mean nothing to a server on this machine: recorded only.
        return f"PostgreSQL {version} on {HOST}:{port}{note}"

    def _put_database(self, state: State, database: CloudSQLDatabase) -> str:
        server, port, instance = self.running(state, database.instance.primitive_id())
        with server.admin(port) as conn:
            made = sql.create_database(conn, database.database_name)
        outputs = {**self._endpoint(instance), "database": database.database_name}
        record(state, database, database.desired_properties(), outputs)
        return "created" if made else "already existed; recorded"

    def _put_user(self, state: State, user: CloudSQLUser) -> str:
        server, port, instance = self.running(state, user.instance.primitive_id())
        with server.admin(port) as conn:
            verifier = sql.set_login_role(conn, user.user_name, self.provider.secrets.ensure(user.password))
        properties = {**user.desired_properties(), "password": verifier}
        record(state, user, properties, {**self._endpoint(instance), "user": user.user_name})
        return f"login role {user.user_name}"

    def _put_table(self, state: State, table: CloudSQLTable) -> str:
        database = table.database
        server, port, instance = self.running(state, database.instance.primitive_id())
        password, password_file = server.secret("sink-password")
        with server.admin(port) as conn:
            sql.ensure_sink_role(conn, SINK_USER, password)
        message = "created when the first writer starts (no schema declared yet)"
        columns = table.columns()
        if columns is not None:
            with server.admin(port, database.database_name) as conn:
                message = sql.ensure_table(conn, table.table_name, columns)
        outputs = {
            "engine": Engine.POSTGRES,
            **self._endpoint(instance),
            "database": database.database_name,
            "table": table.table_name,
            "user": SINK_USER,
            "password_file": str(password_file),
        }
        record(state, table, table.desired_properties(), outputs)
        return message

    # -- delete ----------------------------------------------------------------------------------
    def delete(self, state: State, rec: ResourceState, doomed: set[str]) -> str:
        """One inside an instance or database deleted in this run only loses its record."""
        rid = rec.resource_id
        if rec.resource_type == INSTANCE:
            self.server(rec).remove()
            forget(state, rid)
            return "server stopped, data deleted"
        ancestors = self._ancestors(state, rec)
        instance = next((a for a in ancestors if a.resource_type == INSTANCE), None)
        if (
            instance is None
            or any(a.resource_id in doomed for a in ancestors)
            or not self.server(instance).is_initialized()
        ):
            del state.resources[rid]
            return f"goes with its {'database' if rec.resource_type == TABLE else 'instance'}"
        server, port, _ = self.running(state, instance.resource_id)
        if rec.resource_type == TABLE:
            database = state.resources[rec.parents[0]].properties["database_name"]
            with server.admin(port, database) as conn:
                sql.drop_table(conn, rec.properties["table_name"])
        else:
            with server.admin(port) as conn:
                if rec.resource_type == DATABASE:
                    sql.drop_database(conn, rec.properties["database_name"])
                else:
                    sql.drop_role(conn, lambda db: server.admin(port, db), rec.properties["user_name"])
        del state.resources[rid]
        return "deleted"

    @staticmethod
    def _ancestors(state: State, rec: ResourceState) -> list[ResourceState]:
        out = []
        while rec.parents and rec.parents[0] in state.resources:
            rec = state.resources[rec.parents[0]]
            out.append(rec)
        return out

    # -- serving ---------------------------------------------------------------------------------
    def ensure_running(self, state: State, started: Callable[[str], None]) -> bool:
        moved = False
        for instance in [r for r in state.resources.values() if r.resource_type == INSTANCE]:
            if instance.properties.get("status") == INCOMPLETE:
                raise LocalTargetError(
                    f"{instance.resource_id} is half-made (an apply was interrupted while making it): run "
                    "`bfctl apply` to finish it, or `bfctl destroy`"
                )
            server = self.server(instance)
            if not server.is_initialized():
                raise LocalTargetError(
                    f"{instance.resource_id} was applied but its data directory {server.directory} is gone; "
                    "run `bfctl apply` to create it again"
                )
            stopped = server.running_port() is None
            port = server.start(instance.private.get("port"))
            if stopped:
                started(f"the PostgreSQL server of {instance.resource_id} (on port {port})")
            moved |= self.set_port(state, instance, port)
        return moved

    def ensure_user(self, instance_id: str, user: str, password: str) -> bool:
        if not user or len(user.encode()) > 63 or user in _RESERVED_USERS or user.startswith(("pg_", "cloudsql")):
            raise LocalTargetError(f"{user!r} cannot be a user name on the local target")
        instance = self.provider.store.load().resources.get(instance_id)
        if instance is None or instance.resource_type != INSTANCE:
            raise LocalTargetError(f"{instance_id} is not applied on the local target; run `bfctl apply` first")
        server = self.server(instance)
        port = server.running_port()
        if port is None:
            raise LocalTargetError(f"the local server of {instance_id} is not running; call ensure_running() first")
        with server.admin(port) as conn:
            return sql.ensure_login_role(conn, user, password)

    # -- helpers ---------------------------------------------------------------------------------
    def server(self, instance: ResourceState) -> EmbeddedPostgres:
        return EmbeddedPostgres(self.absolute(instance.private["directory"]))

    def running(self, state: State, instance_id: str) -> tuple[EmbeddedPostgres, int, ResourceState]:
        instance = state.resources.get(instance_id)
        if instance is None:
            raise LocalTargetError(f"instance {instance_id} is not applied")
        server = self.server(instance)
        port = server.start(instance.private.get("port"))
        self.set_port(state, instance, port)
        instance.properties["status"] = "running"
        return server, port, instance

    @staticmethod
    def set_port(state: State, instance: ResourceState, port: int) -> bool:
        """Record ``port`` for the instance and everything in it; True when it moved."""
        moved = instance.private.get("port") != port
        instance.private["port"] = port
        pending = [instance]
        while pending:
            current = pending.pop()
            current.outputs["port"] = port
            pending.extend(state.children_of(current.resource_id))
        return moved

    @staticmethod
    def _endpoint(instance: ResourceState) -> dict[str, Any]:
        return {k: instance.outputs[k] for k in ("host", "port", "connection_name")}
