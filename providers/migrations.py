"""Alembic migrations of a flow's Cloud SQL databases, with a configuration built in code.

A database declares its folder with ``CloudSQLDatabase(...).options(migrations="migrations")``.
The folder holds ``env.py`` and ``script.py.mako`` (written by the first ``bfctl db revision``)
and ``versions/``; the project needs no ``alembic.ini``. bfctl hands ``env.py`` an open
connection to the stack's database and the flow's metadata through ``Config.attributes``.
Upgrades run one revision per transaction, so a failing revision leaves the database at the
last good one. Alembic is imported only when migrations are used.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bfctl.providers.errors import ProviderError
from bfctl.providers.plan import PropertyChange, ResourceChange
from bfctl.providers.state import State
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLUser
from buildflow.io.primitive import Primitive
from buildflow.secrets import Password

#: The plan's resource type for a database's pending revisions (``<database id>/migrations``).
MIGRATIONS = "buildflow.Migrations"
VERSION_TABLE = "alembic_version"
#: What apply recorded, per primitive id; and where the target keeps a Secret's value.
StackOutputs = Mapping[str, Mapping[str, Any]]
PasswordOf = Callable[[Password], str]


class MigrationSetupError(ProviderError):
    """The migrations of a database cannot be found or run as declared (the message says why)."""


class MigrationError(ProviderError):
    """One revision failed; the database stays at the revision before it."""

    def __init__(self, database_id: str, revision: str, doc: str, cause: BaseException, at: str | None) -> None:
        self.revision = revision
        super().__init__(
            f"migration {revision} ({doc or 'no message'}) of {database_id} failed: {cause}\n"
            f"The database stays at revision {at or '(none)'}: fix the revision, then apply again."
        )


def migrated(primitives: Sequence[Primitive]) -> list[CloudSQLDatabase]:
    """The databases among ``primitives`` that declare a migrations folder."""
    return [p for p in primitives if isinstance(p, CloudSQLDatabase) and p.migrations]


def resource_id(database: CloudSQLDatabase) -> str:
    return f"{database.primitive_id()}/migrations"


def folder_of(project_dir: Path, database: CloudSQLDatabase) -> Path:
    if not database.migrations:
        raise MigrationSetupError(
            f'{database.primitive_id()} has no migrations folder: declare one with .options(migrations="migrations")'
        )
    return project_dir / database.migrations


def migration_user(database: CloudSQLDatabase) -> tuple[str, Password]:
    """The user revisions run as: the first the flow's sessions log in as, so what they create
    belongs to the user the handlers use."""
    from buildflow.dependencies.sqlalchemy import session_users

    users = session_users(database)
    if not users:
        raise MigrationSetupError(
            f"{database.primitive_id()} has migrations but no SessionDep logs in to it with a password: bfctl "
            "runs them from this machine as such a user (a service logging in with enable_iam_auth gets that "
            "user's role on gcp, so it may use what they make); declare "
            "SessionDep(db_primitive=..., db_user=..., db_password=...) too, and migrations run as that user"
        )
    return users[0]


def config(folder: Path, connection: Any = None, metadata: Any = None, stdout: Any = None) -> Any:
    """Alembic's ``Config`` for ``folder``, with no ini file."""
    from alembic.config import Config

    cfg = Config(stdout=stdout) if stdout is not None else Config()
    cfg.set_main_option("script_location", str(folder))
    cfg.attributes["connection"] = connection
    cfg.attributes["target_metadata"] = metadata
    return cfg


def scripts(folder: Path) -> Any:
    """Alembic's ``ScriptDirectory`` of ``folder``."""
    from alembic.script import ScriptDirectory

    if not (folder / "env.py").is_file():
        raise MigrationSetupError(
            f'{folder} has no env.py: run `bfctl db revision -m "first revision"` to create the migrations folder'
        )
    return ScriptDirectory.from_config(config(folder))


def pending(folder: Path, current: Sequence[str], target: str = "heads") -> list[Any]:
    """The revisions from ``current`` (the database's heads) up to ``target``, oldest first."""
    found = scripts(folder).revision_map.iterate_revisions(target, tuple(current) or "base", implicit_base=True)
    return [s for s in reversed(list(found)) if s is not None]


#: A database's revisions as a target reads them, or None and why it cannot read them now.
Revisions = tuple[tuple[str, ...] | None, str]


def plan_changes(
    project_dir: Path, primitives: Sequence[Primitive], revisions_of: Callable[[CloudSQLDatabase], Revisions]
) -> list[ResourceChange]:
    """A step per migrated database with revisions to run, or whose revisions cannot be read now
    (apply checks them then)."""
    out = []
    for database in migrated(primitives):
        current, why = revisions_of(database)
        revisions = pending(folder_of(project_dir, database), current or ())
        if revisions or current is None:
            out.append(plan_change(database, current, revisions, why))
    return out


def plan_change(
    database: CloudSQLDatabase, current: Sequence[str] | None, revisions: list[Any], unreadable: str = ""
) -> ResourceChange:
    """The plan step for ``revisions`` not yet applied (``current`` None: not readable now,
    ``unreadable`` saying why)."""
    listed = ", ".join(f"{s.revision} ({s.doc})" if s.doc else s.revision for s in revisions)
    reason = f"{len(revisions)} pending: {listed}"
    if current is None:
        why = f" ({unreadable})" if unreadable else ""
        reason = f"the database cannot be read before apply{why}: its revisions are checked then"
    old = "(unknown)" if current is None else ",".join(current) or None
    change = PropertyChange("revision", old, revisions[-1].revision if revisions else None)
    return ResourceChange(resource_id(database), MIGRATIONS, "update", [change], reason, database)


def applied_before(state: State, database: CloudSQLDatabase) -> bool:
    """Whether the stack has made the database and the user migrations run as (else no
    revision can have been applied: all are pending)."""
    user, password = migration_user(database)
    made = (database.primitive_id(), CloudSQLUser(user, password, database.instance).primitive_id())
    return all(rid in state.resources for rid in made)


@contextlib.contextmanager
def connected(outputs: StackOutputs, target: str, database: CloudSQLDatabase, password_of: PasswordOf) -> Iterator[Any]:
    """A SQLAlchemy engine on the applied ``database`` as its migration user, connecting as the
    flow's sessions do on ``target`` (through the Cloud SQL connector on gcp); ``password_of``
    gives a Secret's value where this target keeps it."""
    from buildflow.dependencies.flow_dependencies import FlowCredentials, ResourceOutputs
    from buildflow.dependencies.sqlalchemy import CloudSQLConnectors, engine

    user, password = migration_user(database)
    connectors = CloudSQLConnectors(FlowCredentials()) if target == "gcp" else None
    db = engine(ResourceOutputs(dict(outputs), target), database, user, password_of(password), connectors=connectors)
    try:
        yield db
    finally:
        db.dispose()
        if connectors is not None:
            asyncio.run(connectors.teardown())


def read_current(
    outputs: StackOutputs, target: str, database: CloudSQLDatabase, password_of: PasswordOf
) -> tuple[str, ...]:
    """The revisions the applied database is at."""
    with connected(outputs, target, database, password_of) as db, db.connect() as conn:
        return current(conn)


def migrate(
    outputs: StackOutputs,
    target: str,
    database: CloudSQLDatabase,
    folder: Path,
    password_of: PasswordOf,
) -> str:
    """Upgrade the applied database to its latest revision; what was done, in a few words."""
    with connected(outputs, target, database, password_of) as db:
        done = upgrade(db, database, folder)
    return f"upgraded to {done[-1]} ({len(done)} revision(s))" if done else "already at the latest revision"


def upgrade(
    engine: Any,
    database: CloudSQLDatabase,
    folder: Path,
    target: str = "heads",
    on_revision: Callable[[str], None] = lambda revision: None,
) -> list[str]:
    """Apply the revisions up to ``target``, each in its own transaction; returns their ids.

    Raises ``MigrationError`` naming the revision that failed.
    """
    from alembic import command

    with engine.connect() as conn:
        at = current(conn)
    done: list[str] = []
    for script in pending(folder, at, target):
        try:
            with engine.begin() as conn:
                command.upgrade(config(folder, conn), script.revision)
        except Exception as exc:
            last = done[-1] if done else ",".join(at) or None
            raise MigrationError(database.primitive_id(), script.revision, script.doc, exc, last) from exc
        done.append(script.revision)
        on_revision(script.revision)
    return done


def current(connection: Any) -> tuple[str, ...]:
    """The revisions the database is at (empty before the first)."""
    from alembic.runtime.migration import MigrationContext

    return tuple(MigrationContext.configure(connection).get_current_heads())


def load_metadata(database: CloudSQLDatabase) -> Any:
    """The SQLAlchemy ``MetaData`` named by the database's ``metadata`` option (``module:attr``,
    a declarative base or a ``MetaData``), imported from the project."""
    if not database.metadata:
        return None
    module_name, _, attribute = database.metadata.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as exc:
        raise MigrationSetupError(f"metadata={database.metadata!r} of {database.primitive_id()}: {exc}") from exc
    return getattr(value, "metadata", value)
