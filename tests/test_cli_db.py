"""``bfctl db`` before a database exists: the first revision writes the migrations folder from
the files shipped with bfctl, and the commands report a wrong choice or an unapplied stack as
an error (exit 1, no traceback). The migrations run on a real database in test_cli_db_migrations.py."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from support import REPO_ROOT, notes_example, run_bfctl


def test_first_revision_writes_the_migrations_folder(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = notes_example(tmp_path / "notes")
    shutil.rmtree(project / "migrations")

    code, out = run_bfctl(["db", "history"], project, bfctl_env)
    assert code == 1 and "has no env.py: run `bfctl db revision" in out, out
    assert "Traceback" not in out

    code, out = run_bfctl(["db", "revision", "-m", "create the note table"], project, bfctl_env)
    assert code == 0, out
    assert "Wrote migrations/env.py" in out and "Wrote migrations/script.py.mako" in out
    found = re.search(r"Wrote revision (\w+): migrations/versions/(\w+_create_the_note_table\.py)", out)
    assert found is not None, out
    # the notes example's folder was written by this command: what it writes has not changed
    example = REPO_ROOT / "examples" / "notes" / "migrations"
    for name in ("env.py", "script.py.mako"):
        assert (project / "migrations" / name).read_text() == (example / name).read_text()
    script = (project / "migrations" / "versions" / found[2]).read_text()
    assert '"""create the note table' in script and "down_revision = None" in script

    code, out = run_bfctl(["db", "revision", "-m", "add tags"], project, bfctl_env)
    assert code == 0 and "Wrote migrations/" not in out, out  # the folder's files are written once
    code, out = run_bfctl(["db", "history"], project, bfctl_env)
    assert code == 0, out
    assert out.splitlines()[1] == f"<base> -> {found[1]}, create the note table"


def test_db_commands_report_what_they_cannot_do(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = notes_example(tmp_path / "notes")

    code, out = run_bfctl(["db", "current", "--database", "orders"], project, bfctl_env)
    assert code == 1, out
    assert "Error: --database 'orders' names 0 of the databases with migrations (my-project:notes-db.notes)" in out

    code, out = run_bfctl(["db", "upgrade", "--database", "notes"], project, bfctl_env)
    assert code == 1, out
    assert "Error: my-project:notes-db.notes is not applied on the local target: run `bfctl apply`" in out
    assert "Traceback" not in out
