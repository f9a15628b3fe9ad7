"""Migrations on the local target: the pending revisions of each migrated database as plan
steps, run by apply once the database and its users exist, as the flow's session user."""

from __future__ import annotations

from collections.abc import Sequence

from bfctl.providers import migrations
from bfctl.providers.local import sql
from bfctl.providers.local.family import Family
from bfctl.providers.plan import ResourceChange
from bfctl.providers.state import ResourceState, State, outputs_of
from buildflow.io.gcp import CloudSQLDatabase
from buildflow.io.primitive import Primitive


class MigrationsFamily(Family):
    primitive_types = ()

    @property
    def resource_types(self) -> frozenset[str]:
        return frozenset({migrations.MIGRATIONS})

    def changes(self, state: State, primitives: Sequence[Primitive]) -> list[ResourceChange]:
        """A step per migrated database with revisions not applied yet."""
        return migrations.plan_changes(self.project_dir, primitives, lambda db: (self._current(state, db), ""))

    def _current(self, state: State, database: CloudSQLDatabase) -> tuple[str, ...] | None:
        """The database's revisions, () when it is not made yet, None when its server is stopped."""
        if not migrations.applied_before(state, database):
            return ()
        instance = state.resources[database.instance.primitive_id()]
        server = self.provider.cloud_sql.server(instance)
        port = server.running_port()
        if port is None:
            return None
        with server.admin(port, database.database_name) as conn:
            if sql.table_columns(conn, migrations.VERSION_TABLE) is None:
                return ()
            return tuple(str(row[0]) for row in conn.run("SELECT version_num FROM alembic_version"))

    def put(self, state: State, primitive: Primitive) -> str:
        assert isinstance(primitive, CloudSQLDatabase)
        self.provider.cloud_sql.running(state, primitive.instance.primitive_id())
        folder = migrations.folder_of(self.project_dir, primitive)
        return migrations.migrate(outputs_of(state), self.provider.target, primitive, folder, self.provider.password_of)

    def delete(self, state: State, record: ResourceState, doomed: set[str]) -> str:
        return "the revisions go with the database"
