"""``bfctl apply`` will not replace a table or database (which deletes its rows) without
``--allow-data-loss``: a real subprocess on the local target, with its embedded PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

from support import REPO_ROOT, run_bfctl, write

from bfctl.providers.plan import Plan, ResourceChange

STATE = Path(".buildflow/state/local-dev.json")


def test_replacing_cloud_sql_needs_allow_data_loss(
    tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]
) -> None:
    notes = tmp_path / "notes"
    shutil.copytree(REPO_ROOT / "examples" / "notes", notes, ignore=shutil.ignore_patterns(".buildflow"))
    destroyed.append(notes)
    code, out = run_bfctl(["apply", "--yes"], notes, bfctl_env)
    assert code == 0, out
    write(notes / "v14.py", (notes / "main.py").read_text().replace("POSTGRES_15", "POSTGRES_14"))

    code, out = run_bfctl(["plan", "v14.py:app"], notes, bfctl_env)
    assert code == 0 and "replaces my-project:notes-db: its databases and their rows are deleted" in out, out
    assert "replaces my-project:notes-db.notes: its tables and their rows are deleted" in out

    before = (notes / STATE).read_bytes()
    code, out = run_bfctl(["apply", "v14.py:app", "--yes"], notes, bfctl_env)
    assert code == 1, out
    assert "--allow-data-loss" in out and "nothing was changed" in out
    assert "my-project:notes-db" in out and "my-project:notes-db.notes" in out
    assert "Traceback" not in out and "replaced my-project" not in out
    assert (notes / STATE).read_bytes() == before

    code, out = run_bfctl(["apply", "v14.py:app", "--yes", "--allow-data-loss"], notes, bfctl_env)
    assert code == 0, out
    assert "replaced my-project:notes-db " in out
    code, out = run_bfctl(["plan", "v14.py:app"], notes, bfctl_env)
    assert code == 0 and "0 to replace" in out and "rows are deleted" not in out, out


def test_a_replaced_bigquery_table_says_its_rows_are_deleted() -> None:
    """The gcp plan shares the model: a table BigQuery cannot change in place is replaced."""
    plan = Plan(
        "gcp",
        "dev",
        [
            ResourceChange("p.events.clicks", "gcp.bigquery.Table", "replace"),
            ResourceChange("p.events", "gcp.bigquery.Dataset", "update"),
            ResourceChange("p:topic", "gcp.pubsub.Topic", "replace"),
        ],
    )
    assert plan.data_losses() == ["replaces p.events.clicks: its rows are deleted"]
