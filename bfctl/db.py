"""``bfctl db``: Alembic migrations of the flow's Cloud SQL databases, against the stack's database.

Only Typer is imported here at module level (``bfctl --help`` stays fast); the flow, the
providers and Alembic come with the command that needs them. Every command that connects
holds the stack's lock, as apply does.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from bfctl import console
from bfctl.help import Command, Group

db_app = typer.Typer(
    cls=Group,
    no_args_is_help=True,
    help="Schema migrations (Alembic) of the flow's Cloud SQL databases: revisions, upgrade, downgrade, history.",
)

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="The database (its primitive id or its name) when the flow has several with migrations.",
        show_default=False,
    ),
]
FlowOption = Annotated[
    str | None,
    typer.Option(
        "--flow", metavar="TARGET", help="The flow module, as `bfctl plan TARGET` takes it.", show_default=False
    ),
]
StackOption = Annotated[str, typer.Option("--stack", help="Stack name: one set of resources and state per stack.")]
InfraTargetOption = Annotated[
    str, typer.Option("--target", help="Where the database lives: `local` (embedded, the default) or `gcp`.")
]


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


def _database(flow_target: str | None, wanted: str | None, infra_target: str) -> Any:
    from bfctl.cli import _load
    from bfctl.infra import declared_primitives
    from bfctl.providers.migrations import migrated

    loaded = _load(flow_target)
    return choose(migrated(declared_primitives(loaded.flow, infra_target)), wanted)


@contextlib.contextmanager
def _connected(database: Any, stack: str, infra_target: str, command: str) -> Iterator[Any]:
    """An engine on the stack's applied ``database``, as the flow's sessions connect, under the lock."""
    from bfctl.infra import Refused, provider_for
    from bfctl.providers.migrations import connected

    provider = provider_for(infra_target, stack)
    with provider.locked(f"bfctl db {command}"):
        outputs = provider.ensure_running()
        if database.primitive_id() not in outputs:
            raise Refused(f"{database.primitive_id()} is not applied on the {infra_target} target: run `bfctl apply`")
        with connected(outputs, infra_target, database, provider.password_of) as db:
            yield db


def _folder(database: Any) -> Any:
    from pathlib import Path

    from bfctl.providers.migrations import folder_of

    return folder_of(Path.cwd(), database)


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
    infra_target: InfraTargetOption = "local",
) -> None:
    """Write a new revision (the first one also writes the folder's env.py and script.py.mako)."""
    from bfctl.cli import _reported_errors

    with _reported_errors():
        from alembic import command

        from bfctl.providers.migrations import MigrationSetupError, config, load_metadata, scaffold

        chosen = _database(flow, database, infra_target)
        folder = _folder(chosen)
        for path in scaffold(folder):
            console.info(f"Wrote {path.relative_to(os.getcwd())}")
        script: Any
        if not autogenerate:
            script = command.revision(config(folder), message=message)
        else:
            metadata = load_metadata(chosen)
            if metadata is None:
                raise MigrationSetupError(
                    f"--autogenerate compares with the flow's SQLAlchemy metadata: declare it on "
                    f'{chosen.primitive_id()} with .options(migrations=..., metadata="models:Base")'
                )
            with _connected(chosen, stack, infra_target, "revision") as db, db.connect() as conn:
                script = command.revision(config(folder, conn, metadata), message=message, autogenerate=True)
        console.info(f"Wrote revision {script.revision}: {os.path.relpath(script.path)}")


@db_app.command(cls=Command)
def upgrade(
    revision: Annotated[str, typer.Argument(metavar="REV", help="Revision to upgrade to.")] = "heads",
    database: DatabaseOption = None,
    flow: FlowOption = None,
    stack: StackOption = "dev",
    infra_target: InfraTargetOption = "local",
) -> None:
    """Run the revisions up to REV (all of them by default), each in a transaction of its own."""
    from bfctl.cli import _reported_errors

    with _reported_errors():
        from bfctl.providers.migrations import upgrade as run

        chosen = _database(flow, database, infra_target)
        with _connected(chosen, stack, infra_target, "upgrade") as db:
            run(db, chosen, _folder(chosen), revision, lambda rev: console.info(f"  ✓ {rev}", "green"))
            _say_at(chosen, db)


@db_app.command(cls=Command)
def downgrade(
    revision: Annotated[str, typer.Argument(metavar="REV", help="Revision to go back to (`base`: before the first).")],
    database: DatabaseOption = None,
    flow: FlowOption = None,
    stack: StackOption = "dev",
    infra_target: InfraTargetOption = "local",
) -> None:
    """Undo the revisions after REV, in one transaction."""
    from bfctl.cli import _reported_errors

    with _reported_errors():
        from alembic import command

        from bfctl.providers.migrations import config

        chosen = _database(flow, database, infra_target)
        with _connected(chosen, stack, infra_target, "downgrade") as db:
            with db.begin() as conn:
                command.downgrade(config(_folder(chosen), conn), revision)
            _say_at(chosen, db)


@db_app.command(cls=Command)
def history(
    database: DatabaseOption = None,
    flow: FlowOption = None,
    infra_target: InfraTargetOption = "local",
) -> None:
    """List the revisions, newest first (reads the folder only)."""
    from bfctl.cli import _reported_errors

    with _reported_errors():
        from alembic import command

        from bfctl.providers.migrations import config, scripts

        folder = _folder(_database(flow, database, infra_target))
        scripts(folder)  # a clear error when the folder has no env.py
        command.history(config(folder))


@db_app.command(cls=Command)
def current(
    database: DatabaseOption = None,
    flow: FlowOption = None,
    stack: StackOption = "dev",
    infra_target: InfraTargetOption = "local",
) -> None:
    """Print the revision the stack's database is at."""
    from bfctl.cli import _reported_errors

    with _reported_errors():
        chosen = _database(flow, database, infra_target)
        with _connected(chosen, stack, infra_target, "current") as db:
            _say_at(chosen, db)


def _say_at(database: Any, engine: Any) -> None:
    """Say which revision the database behind ``engine`` is at, read from it now."""
    from bfctl.providers.migrations import current

    with engine.connect() as conn:
        at = ",".join(current(conn))
    console.info(f"{database.primitive_id()} is at revision {at or '(none)'}.")
