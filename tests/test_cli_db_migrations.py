"""Schema migrations of the notes example on a real embedded PostgreSQL: `bfctl plan` lists
pending revisions, `bfctl apply` runs them one transaction each, `bfctl db ...` as a user runs it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from revisions import ADD_TAGS, BROKEN
from support import REPO_ROOT, cloud_sql_instance, run_bfctl, write

from bfctl.providers.local import sql
from bfctl.providers.local.postgres import EmbeddedPostgres
from bfctl.providers.migrations import MigrationSetupError, migration_user
from bfctl.providers.state import StateStore
from buildflow.dependencies.sqlalchemy import SessionDep
from buildflow.exceptions import PrimitiveValidationError
from buildflow.io.gcp import CloudSQLDatabase


@pytest.fixture
def notes(tmp_path: Path, bfctl_env: dict[str, str]) -> Iterator[Path]:
    project = tmp_path / "notes"
    shutil.copytree(
        REPO_ROOT / "examples" / "notes", project, ignore=shutil.ignore_patterns(".buildflow", "__pycache__")
    )
    yield project
    if (project / ".buildflow").exists():  # the servers apply started outlive the test otherwise
        code, out = run_bfctl(["destroy", "--yes"], project, bfctl_env)
        assert code == 0, out


def _columns(project: Path) -> set[str] | None:
    """The note table's columns, read as the server's admin."""
    state = StateStore(project, "local", "dev").load()
    record = state.resources["my-project:notes-db"]
    server = EmbeddedPostgres(project / record.private["directory"])
    with server.admin(record.private["port"], "notes") as conn:
        return sql.table_columns(conn, "note")


def test_migrations_cycle(notes: Path, bfctl_env: dict[str, str]) -> None:
    def bfctl(*args: str) -> str:
        code, out = run_bfctl(list(args), notes, bfctl_env)
        assert code == 0, out
        return out

    plan = json.loads(bfctl("plan", "--json"))
    step = plan["resources"][-1]
    assert step["resource_id"] == "my-project:notes-db.notes/migrations" and step["action"] == "update"
    assert step["reason"] == "1 pending: 0001 (create the note table)"
    assert step["changes"] == [
        {"name": "revision", "old": None, "new": "0001", "secret": False, "forces_replace": False}
    ]

    out = bfctl("apply", "--yes")  # fresh: makes the database, then migrates it
    assert "✓ updated my-project:notes-db.notes/migrations" in out and "upgraded to 0001 (1 revision(s))" in out
    assert _columns(notes) == {"id", "title", "body", "created_at"}
    assert "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 3 unchanged." in bfctl("plan")

    write(notes / "migrations" / "versions" / "0002_add_tags.py", ADD_TAGS)
    out = bfctl("plan")
    assert "~   update    buildflow.Migrations  my-project:notes-db.notes/migrations" in out
    assert "(1 pending: 0002 (add tags to notes))" in out and "revision: 0001 → 0002" in out
    assert "upgraded to 0002" in bfctl("apply", "--yes")
    assert _columns(notes) == {"id", "title", "body", "created_at", "tags"}

    assert bfctl("db", "current").strip() == "my-project:notes-db.notes is at revision 0002."
    assert bfctl("db", "history").splitlines() == [
        "0001 -> 0002 (head), add tags to notes",
        "<base> -> 0001, create the note table",
    ]
    assert "is at revision 0001." in bfctl("db", "downgrade", "0001")
    assert _columns(notes) == {"id", "title", "body", "created_at"}  # the table stays, without tags
    out = bfctl("db", "upgrade", "--database", "notes")
    assert "✓ 0002" in out and "is at revision 0002." in out

    out = bfctl("db", "revision", "-m", "rename body")
    [written] = list((notes / "migrations" / "versions").glob("*_rename_body.py"))
    assert f"Wrote revision {written.name.split('_')[0]}: migrations/versions/{written.name}" in out
    assert "down_revision = '0002'" in written.read_text()
    assert "1 pending" in bfctl("plan")


def test_failing_revision_stops_apply_at_the_last_good_one(notes: Path, bfctl_env: dict[str, str]) -> None:
    write(notes / "migrations" / "versions" / "0002_add_tags.py", ADD_TAGS)
    write(notes / "migrations" / "versions" / "0003_broken.py", BROKEN)
    code, out = run_bfctl(["apply", "--yes"], notes, bfctl_env)
    assert code == 1, out
    assert "migration 0003 (a revision that fails) of my-project:notes-db.notes failed" in out
    assert "no_such_table" in out and "The database stays at revision 0002" in out
    code, out = run_bfctl(["db", "current"], notes, bfctl_env)
    assert code == 0 and "is at revision 0002." in out
    assert "tags" in (_columns(notes) or set())
    code, out = run_bfctl(["plan"], notes, bfctl_env)
    assert "(1 pending: 0003 (a revision that fails))" in out


MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "note"
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    title: Mapped[str] = mapped_column(sa.Text)
    body: Mapped[str] = mapped_column(sa.Text, server_default="")
    created_at = mapped_column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    tags: Mapped[str | None] = mapped_column(sa.Text)
"""


def test_autogenerate_writes_what_the_models_add(notes: Path, bfctl_env: dict[str, str]) -> None:
    write(notes / "models.py", MODELS)
    main = notes / "main.py"
    main.write_text(
        main.read_text().replace(
            '.options(migrations="migrations")', '.options(migrations="migrations", metadata="models:Base")'
        )
    )
    code, out = run_bfctl(["apply", "--yes"], notes, bfctl_env)
    assert code == 0, out

    code, out = run_bfctl(["db", "revision", "-m", "add tags", "--autogenerate"], notes, bfctl_env)
    assert code == 0, out
    [written] = list((notes / "migrations" / "versions").glob("*_add_tags.py"))
    script = written.read_text()
    assert "op.add_column('note', sa.Column('tags', sa.Text(), nullable=True))" in script
    assert "op.drop_column('note', 'tags')" in script
    assert "create_table" not in script  # what the database has already is not written again

    code, out = run_bfctl(["apply", "--yes"], notes, bfctl_env)
    assert code == 0 and "upgraded to" in out, out
    assert _columns(notes) == {"id", "title", "body", "created_at", "tags"}


def test_migrations_option_is_checked() -> None:
    database = CloudSQLDatabase("notes", cloud_sql_instance())
    for folder in ("/abs/migrations", "../elsewhere", ""):
        with pytest.raises(PrimitiveValidationError, match="relative to the project"):
            database.options(migrations=folder).validate()
    with pytest.raises(PrimitiveValidationError, match="only used with migrations"):
        database.options(migrations=None, metadata="models:Base").validate()
    with pytest.raises(PrimitiveValidationError, match="such as 'models:Base'"):
        database.options(migrations="migrations", metadata="models.Base").validate()
    database.options(migrations="db/migrations", metadata="models:Base").validate()
    with pytest.raises(MigrationSetupError, match="no SessionDep logs in to it with a password"):
        migration_user(database)  # the user revisions run as is the sessions': there is none
    SessionDep(database, "sa-notes@my-project.iam", "", enable_iam_auth=True)
    with pytest.raises(MigrationSetupError, match=r"logging in with enable_iam_auth gets that user.s role"):
        migration_user(database)
    SessionDep(database, "notes", "s3cret")
    assert migration_user(database) == ("notes", "s3cret")
    assert database.desired_properties() == {"instance": "my-project:notes-db", "database_name": "notes"}
