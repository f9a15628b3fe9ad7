"""``bfctl db``: Alembic migrations of the flow's Cloud SQL databases, against the stack's database.

Only Typer is imported here at module level (``bfctl --help`` stays fast); the flow, the
providers and Alembic come with the command that needs them. Every command that connects
holds the stack's lock, as apply does.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from bfctl import console
from bfctl.commands import load, reported_errors
from bfctl.help import Command, Group
from bfctl.options import DatabaseOption, DatabaseTargetOption, FlowOption, StackOption

db_app = typer.Typer(
    cls=Group,
    no_args_is_help=True,
    help="Schema migrations (Alembic) of the flow's Cloud SQL databases: revisions, upgrade, downgrade, history.",
)


def choose(databases: list[Any], wanted: str | None) -> Any:
    """The database ``wanted`` names (id or name), or the only one; refused otherwise."""
    from bfctl.infra import Refused

    if not databases:
        raise Refused('the flow has no database with migrations: declare .options(migrations="migrations") on one')
    names = ", ".join(d.primitive_id() for d in databases)
    if wanted is None:
        if len(databases) > 1:
            raise Refused(f"the flow has several databases with migrations ({names}): choose one with --database")
        return databases[0]
    found = [d for d in databases if wanted in (d.primitive_id(), d.database_name)]
    if len(found) != 1:
        raise Refused(f"--database {wanted!r} names {len(found)} of the databases with migrations ({names})")
    return found[0]


@dataclass(frozen=True)
class Migrations:
    """The flow's database whose migrations a command works on, and where they live."""

    database: Any
    folder: Path
    infra_target: str

    @contextlib.contextmanager
    def connected(self, stack: str, command: str) -> Iterator[Any]:
        """An engine on the stack's applied database, as the flow's sessions connect, under the
        stack's lock (held as ``bfctl db <command>``)."""
        from bfctl.infra import Refused, provider_for, say_started
        from bfctl.providers.migrations import connected

        provider = provider_for(self.infra_target, stack)
        with provider.locked(f"bfctl db {command}"):
            outputs = provider.ensure_running(say_started)
            if (database_id := self.database.primitive_id()) not in outputs:
                raise Refused(f"{database_id} is not applied on the {self.infra_target} target: run `bfctl apply`")
            with connected(outputs, self.infra_target, self.database, provider.password_of) as db:
                yield db

    def say_revision(self, engine: Any) -> None:
        """Say which revision the database behind ``engine`` is at, read from it now."""
        from bfctl.providers.migrations import current

        with engine.connect() as conn:
            at = ",".join(current(conn))
        console.info(f"{self.database.primitive_id()} is at revision {at or '(none)'}.")


@contextlib.contextmanager
def migrations(command: str, flow: str | None, wanted: str | None, infra_target: str) -> Iterator[Migrations]:
    """The database ``wanted`` names in the flow (see :func:`choose`); errors inside are reported
    as every command reports them. ``command`` (``upgrade``) names the command in the example
    of a missing flow's message, with the ``--flow`` the db commands take it by."""
    with reported_errors():
        from bfctl.infra import declared_primitives
        from bfctl.providers.migrations import folder_of, migrated

        databases = migrated(declared_primitives(load(flow, f"bfctl db {command} --flow").flow, infra_target))
        database = choose(databases, wanted)
        yield Migrations(database, folder_of(Path.cwd(), database), infra_target)


@db_app.command(cls=Command)
def revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the revision does.")],
    autogenerate: Annotated[
        bool,
        typer.Option("--autogenerate", help="Compare the database with the flow's metadata= and write the difference."),
    ] = False,
    database: DatabaseOption = None,
    flow: FlowOption = None,
    stack: StackOption = "dev",
    infra_target: DatabaseTargetOption = "local",
) -> None:
    """Write a new revision (the first one also writes the folder's env.py and script.py.mako)."""
    with migrations("revision", flow, database, infra_target) as chosen:
        from alembic import command

        from bfctl.providers.migrations import MigrationSetupError, config, load_metadata

        for path in scaffold(chosen.folder):
            console.info(f"Wrote {path.relative_to(os.getcwd())}")
        script: Any
        if not autogenerate:
            script = command.revision(config(chosen.folder), message=message)
        else:
            metadata = load_metadata(chosen.database)
            if metadata is None:
                raise MigrationSetupError(
                    f"--autogenerate compares with the flow's SQLAlchemy metadata: declare it on "
                    f'{chosen.database.primitive_id()} with .options(migrations=..., metadata="models:Base")'
                )
            with chosen.connected(stack, "revision") as db, db.connect() as conn:
                script = command.revision(config(chosen.folder, conn, metadata), message=message, autogenerate=True)
        console.info(f"Wrote revision {script.revision}: {os.path.relpath(script.path)}")


@db_app.command(cls=Command)
def upgrade(
    revision: Annotated[str, typer.Argument(metavar="REV", help="Revision to upgrade to.")] = "heads",
    database: DatabaseOption = None,
    flow: FlowOption = None,
    stack: StackOption = "dev",
    infra_target: DatabaseTargetOption = "local",
) -> None:
    """Run the revisions up to REV (all of them by default), each in a transaction of its own."""
    with migrations("upgrade", flow, database, infra_target) as chosen, chosen.connected(stack, "upgrade") as db:
        from bfctl.providers.migrations import upgrade as run

        run(db, chosen.database, chosen.folder, revision, lambda rev: console.info(f"  ✓ {rev}", "green"))
        chosen.say_revision(db)


@db_app.command(cls=Command)
def downgrade(
    revision: Annotated[str, typer.Argument(metavar="REV", help="Revision to go back to (`base`: before the first).")],
    database: DatabaseOption = None,
    flow: FlowOption = None,
    stack: StackOption = "dev",
    infra_target: DatabaseTargetOption = "local",
) -> None:
    """Undo the revisions after REV, in one transaction."""
    with migrations("downgrade", flow, database, infra_target) as chosen, chosen.connected(stack, "downgrade") as db:
        from alembic import command

        from bfctl.providers.migrations import config

        with db.begin() as conn:
            command.downgrade(config(chosen.folder, conn), revision)
        chosen.say_revision(db)


@db_app.command(cls=Command)
def history(
    database: DatabaseOption = None,
    flow: FlowOption = None,
    infra_target: DatabaseTargetOption = "local",
) -> None:
    """List the revisions, newest first (reads the folder only)."""
    with migrations("history", flow, database, infra_target) as chosen:
        from alembic import command

        from bfctl.providers.migrations import config, scripts

        scripts(chosen.folder)  # a clear error when the folder has no env.py
        command.history(config(chosen.folder))


@db_app.command(cls=Command)
def current(
    database: DatabaseOption = None,
    flow: FlowOption = None,
    stack: StackOption = "dev",
    infra_target: DatabaseTargetOption = "local",
) -> None:
    """Print the revision the stack's database is at."""
    with migrations("current", flow, database, infra_target) as chosen, chosen.connected(stack, "current") as db:
        chosen.say_revision(db)


#: What the first ``bfctl db revision`` writes into a migrations folder: package files beside
#: this module, written as they are (Alembic's template fills in ``script.py.mako``).
FOLDER_TEMPLATES = Path(__file__).parent / "migrations_folder"


def scaffold(folder: Path) -> list[Path]:
    """Write ``env.py``, ``script.py.mako`` and ``versions/`` where missing; returns what was written."""
    written = []
    (folder / "versions").mkdir(parents=True, exist_ok=True)
    for name in ("env.py", "script.py.mako"):
        path = folder / name
        if not path.exists():
            path.write_text((FOLDER_TEMPLATES / f"{name}.tmpl").read_text(encoding="utf-8"), encoding="utf-8")
            written.append(path)
    return written
