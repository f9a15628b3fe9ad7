"""``bfctl plan --format markdown``: the plan a pull-request comment shows, from a real
subprocess on the local target, with ``--detailed-exitcode``'s codes (0, 2, and 1 on error)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import REPO_ROOT, bfctl_run, write

from bfctl import render
from bfctl.providers.plan import Plan, PropertyChange, ResourceChange

#: The password examples/notes gives its database user.
NOTES_PASSWORD = "s3cret"


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    project = tmp_path / "notes"
    shutil.copytree(REPO_ROOT / "examples" / "notes", project, ignore=shutil.ignore_patterns(".buildflow"))
    assert NOTES_PASSWORD in (project / "main.py").read_text()
    return project


def _table_rows(markdown: str) -> list[list[str]]:
    """The cells of each row of the table, header and separator left out."""
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[2:]]


def test_markdown_plan_is_a_table_of_changes_with_secrets_masked(notes: Path, bfctl_env: dict[str, str]) -> None:
    result = bfctl_run(["plan", "--format", "markdown", "--detailed-exitcode"], notes, bfctl_env)

    assert result.returncode == 2, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("### bfctl plan: stack `dev` on the local target\n"), out
    assert "**3 to create, 1 to update, 0 to replace, 0 to delete, 0 unchanged.**" in out
    assert "| Action | Resource | Type | Changes |\n| --- | --- | --- | --- |\n" in out
    rows = {row[1]: row for row in _table_rows(out)}
    assert set(rows) == {
        "my-project:notes-db",
        "my-project:notes-db.notes",
        "my-project:notes-db/users/notes",
        "my-project:notes-db.notes/migrations",
    }
    user = rows["my-project:notes-db/users/notes"]
    assert user[:3] == ["+ create", "my-project:notes-db/users/notes", "gcp.sql.User"]
    assert user[3].split("<br>") == ["instance: my-project:notes-db", "user_name: notes", "password: (secret)"]
    assert rows["my-project:notes-db.notes/migrations"][0] == "~ update"
    assert "revision: (none) → 0001" in rows["my-project:notes-db.notes/migrations"][3]
    assert NOTES_PASSWORD not in out + result.stderr


def test_markdown_plan_without_changes_exits_0(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(
        tmp_path / "main.py",
        """\
        from buildflow import Flow

        app = Flow()


        @app.service().endpoint("/hello")
        def hello() -> str:
            return "hi"
        """,
    )
    result = bfctl_run(["plan", "main:app", "--format", "markdown", "--detailed-exitcode"], tmp_path, bfctl_env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "**0 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged.**" in result.stdout
    assert "No changes: nothing to apply." in result.stdout
    assert "| Action |" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing:app"], "Error: no module named `missing`"),
        (["--json"], "--json asks for JSON and --format for markdown: pass one of them"),
    ],
)
def test_markdown_plan_errors_exit_1_with_a_message(
    args: list[str], message: str, notes: Path, bfctl_env: dict[str, str]
) -> None:
    result = bfctl_run(["plan", *args, "--format", "markdown", "--detailed-exitcode"], notes, bfctl_env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_unknown_plan_format_is_refused(notes: Path, bfctl_env: dict[str, str]) -> None:
    result = bfctl_run(["plan", "--format", "html"], notes, bfctl_env)
    assert result.returncode == 1
    assert "unknown plan format `html`: use text, json, markdown" in result.stderr


def test_markdown_cells_keep_the_table_whole_and_show_values_as_written() -> None:
    change = ResourceChange(
        "p:t",
        "example.Table",
        "update",
        [
            PropertyChange("description", "a | b", "two\nlines <b>bold</b>"),
            PropertyChange("token", "old-token", "new-token", secret=True, forces_replace=True),
        ],
    )
    markdown = render.plan_markdown(Plan("local", "dev", [change]), [], ["mind the `|` pipe"])

    [row] = _table_rows(markdown)
    assert row[3].split("<br>") == [
        "description: a \\| b → two",
        "lines &lt;b&gt;bold&lt;/b&gt;",
        "token: (secret) → (secret) (forces replace)",
    ]
    assert markdown.endswith("\n\n- **Warning:** mind the `\\|` pipe")
    assert "token" in markdown and "new-token" not in markdown and "old-token" not in markdown
