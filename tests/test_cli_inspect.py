"""``bfctl graph | routes | outputs | init`` as a user runs them: real subprocesses on the examples,
a real apply (embedded PostgreSQL) for the outputs, and pytest run inside a fresh starter project."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO_ROOT, bfctl_run


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    project = tmp_path / "notes"
    shutil.copytree(REPO_ROOT / "examples" / "notes", project, ignore=shutil.ignore_patterns(".buildflow"))
    return project


def _ok(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = bfctl_run(args, cwd, env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _dot_edges(dot: str) -> set[tuple[str, str, str]]:
    """(label of the tail node, label of the head node, edge label) of a DOT graph as rendered."""
    labels = dict(re.findall(r'^\s*(\w+) \[shape=\w+, label="(.*?)"\];$', dot, re.MULTILINE))
    edges = re.findall(r'^\s*(\w+) -> (\w+)(?: \[label="(\w+)"\])?;$', dot, re.MULTILINE)
    return {(labels[a], labels[b], label) for a, b, label in edges}


def test_graph_of_notes_in_every_format(bfctl_env: dict[str, str]) -> None:
    project = REPO_ROOT / "examples" / "notes"
    text = _ok(["graph"], project, bfctl_env)
    assert "endpoint create_note: POST /notes" in text
    assert re.search(r"SessionMaker\[notes\] \[REPLICA\] uses my-project:notes-db\.notes\b", text)
    assert "my-project:notes-db.notes (CloudSQLDatabase)" in text

    mermaid = _ok(["graph", "--format", "mermaid"], project, bfctl_env)
    assert mermaid.startswith("flowchart LR\n")
    nodes = dict(re.findall(r"^\s*(\w+)[\[(]+\"(.*?)\"[\])]+$", mermaid, re.MULTILINE))
    uses = re.findall(r"^\s*(\w+) -->\|uses\| (\w+)$", mermaid, re.MULTILINE)
    assert ("SessionMaker[notes]<br/>REPLICA", "CloudSQLDatabase<br/>my-project:notes-db.notes") in {
        (nodes[a], nodes[b]) for a, b in uses
    }

    dot = _ok(["graph", "--format", "dot"], project, bfctl_env)
    assert dot.startswith("digraph flow {") and dot.rstrip().endswith("}")
    edges = _dot_edges(dot)
    assert ("endpoint get_note\\nGET /notes/{note_id}", "Notes\\nPROCESS", "") in edges
    assert ("SessionMaker[notes]\\nREPLICA", "CloudSQLDatabase\\nmy-project:notes-db.notes", "uses") in edges


def test_graph_of_clickstream_shows_the_collector_writing_its_table(bfctl_env: dict[str, str]) -> None:
    project = REPO_ROOT / "examples" / "clickstream"
    text = _ok(["graph"], project, bfctl_env)
    assert "collector collect: POST /views\n    writes analysis_table:page_views" in text

    mermaid = _ok(["graph", "--format", "mermaid"], project, bfctl_env)
    assert re.search(r"^\s*(\w+) -->\|writes\| (\w+)$", mermaid, re.MULTILINE)
    assert '("AnalysisTable<br/>analysis_table:page_views")' in mermaid

    edges = _dot_edges(_ok(["graph", "--format", "dot"], project, bfctl_env))
    assert ("collector collect\\nPOST /views", "AnalysisTable\\nanalysis_table:page_views", "writes") in edges


def test_graph_refuses_an_unknown_format(bfctl_env: dict[str, str]) -> None:
    result = bfctl_run(["graph", "--format", "svg"], REPO_ROOT / "examples" / "notes", bfctl_env)
    assert result.returncode == 1
    assert "unknown graph format `svg`: use text, mermaid, dot" in result.stderr + result.stdout


def test_routes_as_json(bfctl_env: dict[str, str]) -> None:
    rows = json.loads(_ok(["routes", "--json"], REPO_ROOT / "examples" / "notes", bfctl_env))
    assert rows == [
        {"method": "POST", "path": "/notes", "handler": "create_note", "kind": "endpoint"},
        {"method": "GET", "path": "/notes", "handler": "list_notes", "kind": "endpoint"},
        {"method": "GET", "path": "/notes/{note_id}", "handler": "get_note", "kind": "endpoint"},
        {"method": "DELETE", "path": "/notes/{note_id}", "handler": "delete_note", "kind": "endpoint"},
    ]
    collector = json.loads(_ok(["routes", "--json"], REPO_ROOT / "examples" / "clickstream", bfctl_env))
    assert {"method": "POST", "path": "/views", "handler": "collect", "kind": "collector"} in collector


def test_outputs_after_apply_hold_no_secret(notes: Path, bfctl_env: dict[str, str]) -> None:
    before = _ok(["outputs"], notes, bfctl_env)
    assert "Nothing applied on the local target (stack `dev`)" in before
    _ok(["apply", "--yes"], notes, bfctl_env)
    try:
        raw = _ok(["outputs", "--json"], notes, bfctl_env)
        outputs = json.loads(raw)
        assert outputs["my-project:notes-db.notes"]["database"] == "notes"
        assert outputs["my-project:notes-db/users/notes"]["user"] == "notes"
        shown = _ok(["outputs"], notes, bfctl_env)
        assert "my-project:notes-db.notes\n    host = 127.0.0.1" in shown
        admin = (notes / ".buildflow/local/dev/my-project_notes-db/admin-password").read_text().strip()
        for secret in ("s3cret", admin):
            assert secret not in raw and secret not in shown
    finally:
        _ok(["destroy", "--yes"], notes, bfctl_env)


def test_init_makes_a_project_whose_test_passes(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    out = _ok(["init", "hello-api"], tmp_path, bfctl_env)
    project = tmp_path / "hello-api"
    assert f"Created {project}" in out
    assert 'app = "main:app"' in (project / "pyproject.toml").read_text()
    tested = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=bfctl_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout

    again = bfctl_run(["init", "hello-api"], tmp_path, bfctl_env)
    assert again.returncode == 1
    assert "already exists and is not an empty folder" in again.stderr + again.stdout
    bad = bfctl_run(["init", "9lives"], tmp_path, bfctl_env)
    assert bad.returncode == 1 and "cannot name a project" in bad.stderr + bad.stdout
