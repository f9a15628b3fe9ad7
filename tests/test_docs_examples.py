"""The documentation's own checks: its tutorial, concepts and reference examples run as shown,
every file a page includes exists, no page holds code that no test runs, and the site builds
with --strict and works offline.

Each example is a project folder made of ``docs_src`` files under the names the page gives them,
and the transcripts the page shows are replayed in it (tests/docs_transcripts.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from docs_transcripts import DOCS_SRC, replay
from support import REPO_ROOT

DOCS = REPO_ROOT / "docs"
INCLUDE = re.compile(r'^\s*--8<-- "([^"]+)"\s*$', re.MULTILINE)
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)

#: An example: the project files it runs in (name in the project: file or folder under docs_src),
#: and the transcripts replayed there in turn (a transcript's servers stop when it ends).
EXAMPLES: dict[str, tuple[dict[str, str], list[str]]] = {
    "bfctl init": ({}, ["tutorial/init.out"]),
    "concepts: flows": ({"main.py": "concepts/flows.py"}, ["concepts/flows.out"]),
    "concepts: processors": ({"main.py": "concepts/processors.py"}, ["concepts/processors.out"]),
    "concepts: dependencies": ({"main.py": "concepts/dependencies.py"}, ["concepts/dependencies.out"]),
    "concepts: requests": (
        {"main.py": "concepts/requests.py", "note.txt": "concepts/note.txt"},
        ["concepts/requests.out"],
    ),
    "concepts: a scope error": ({"main.py": "concepts/scope_error.py"}, ["concepts/scope_error.out"]),
    "concepts: primitives": ({"main.py": "concepts/primitives.py"}, ["concepts/primitives.out"]),
    "reference: settings": (
        {"main.py": "tutorial/first_flow.py", "pyproject.toml": "reference/pyproject.toml"},
        ["reference/settings.out"],
    ),
    "concepts: the request plan": ({"main.py": "concepts/request_plan.py"}, ["concepts/request_plan.out"]),
    "first flow": (
        {"main.py": "tutorial/first_flow.py"},
        ["tutorial/first_flow.out", "tutorial/first_flow_script.out", "tutorial/first_flow_routes.out"],
    ),
    "dependencies": (
        {"main.py": "tutorial/dependencies.py", "tests/test_main.py": "tutorial/test_dependencies.py"},
        ["tutorial/dependencies.out", "tutorial/test_dependencies.out"],
    ),
    "database": (
        {
            "main.py": "tutorial/database/main.py",
            "models.py": "tutorial/database/models.py",
            "pyproject.toml": "tutorial/database/pyproject.toml",
            "migrations": "tutorial/database/migrations",
        },
        [
            "tutorial/database_plan.out",
            "tutorial/database_apply.out",
            "tutorial/database_serve.out",
            "tutorial/database_destroy.out",
            "tutorial/deploy_build.out",
        ],
    ),
}


def _project(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir()
    for name, source in files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        source_path = DOCS_SRC / source
        if source_path.is_dir():
            shutil.copytree(source_path, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source_path, target)
    return directory


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_example_runs_as_the_page_shows(
    example: str, tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]
) -> None:
    files, transcripts = EXAMPLES[example]
    project = _project(tmp_path / "project", files)
    if any("$ bfctl apply" in (DOCS_SRC / t).read_text() for t in transcripts):
        destroyed.append(project)  # its database is a real server: destroyed even if a step fails
    for transcript in transcripts:
        replay(DOCS_SRC / transcript, project, bfctl_env)


def _pages() -> list[Path]:
    return [*sorted(DOCS.rglob("*.md")), REPO_ROOT / "README.md"]


def test_every_included_file_exists() -> None:
    missing = [
        f"{page.relative_to(REPO_ROOT)}: {name}"
        for page in _pages()
        for name in INCLUDE.findall(page.read_text())
        if not (REPO_ROOT / name).is_file()
    ]
    assert not missing, missing


def test_every_docs_src_file_is_shown_and_every_example_is_run() -> None:
    """A file under docs_src/tutorial, concepts or reference is on a page or in an example's
    project, and each of its Python files and transcripts is run by a test here."""
    shown = {name for page in _pages() for name in INCLUDE.findall(page.read_text())}
    run = {name for files, transcripts in EXAMPLES.values() for name in [*files.values(), *transcripts]}
    for section in ("tutorial", "concepts", "reference"):
        for path in sorted((DOCS_SRC / section).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                name = path.relative_to(DOCS_SRC).as_posix()
                assert f"docs_src/{name}" in shown or name in run or any(name.startswith(f"{d}/") for d in run), name
                if path.suffix in (".py", ".out") and "migrations" not in path.parts:
                    assert name in run, f"{name} is on a page but no test runs it"


def test_no_page_holds_python_that_no_test_runs() -> None:
    """Python on a page is an included docs_src file (run by a test), or a fragment of at most
    three lines. The README, which GitHub shows without includes, holds docs_src files word for
    word: its Python an example, its longer console blocks that example's transcript."""
    examples = {path.read_text() for path in DOCS_SRC.rglob("*") if path.suffix in (".py", ".out")}
    untested = []
    for page in _pages():
        for language, body in FENCE.findall(page.read_text()):
            if INCLUDE.fullmatch(body.strip()) or len(body.strip().splitlines()) <= 3 or body in examples:
                continue
            if language == "python" or (language == "console" and page.name == "README.md"):
                untested.append(f"{page.relative_to(REPO_ROOT)}: {body.splitlines()[0]}")
    assert not untested, untested


#: What would make the theme's script fetch from another host: a Mermaid diagram (Mermaid from a
#: CDN) or a repository link (its stars from GitHub's API). Its only other fetch is a polyfill
#: for browsers without ResizeObserver, which every current browser has.
THEME_FETCHES = ('class="mermaid"', 'data-md-component="source"')
EXTERNAL = re.compile(r"""(?:src|href)=["']?(?:https?:)?//|url\(["']?(?:https?:)?//|@import ["']?(?:https?:)?//""")


def test_site_builds_strictly_and_needs_no_other_host(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-5000:]
    cli_page = (site / "reference" / "cli" / "index.html").read_text()
    assert [name for name in _commands() if f'id="bfctl-{name}"' not in cli_page] == []
    loads = []
    for path in site.rglob("*"):
        if path.suffix in (".html", ".css"):
            text = path.read_text(errors="replace")
            loads += [f"{path.relative_to(site)}: {m.group(0)}" for m in EXTERNAL.finditer(text) if not _link_out(m)]
            loads += [f"{path.relative_to(site)}: {marker}" for marker in THEME_FETCHES if marker in text]
    assert not loads, loads


def _commands() -> list[str]:
    """Every command and subcommand of bfctl, as the page's heading ids spell them (``db-upgrade``)."""
    import typer.main

    from bfctl.cli import app

    group = typer.main.get_command(app)
    names = []
    for name, command in group.commands.items():
        names.append(name)
        names += [f"{name}-{sub}" for sub in getattr(command, "commands", {})]
    return names


def _link_out(match: re.Match[str]) -> bool:
    """An ``<a href>`` to another site is a link a reader may follow, not an asset the page loads."""
    start = match.string.rfind("<", 0, match.start())
    return match.string[start : start + 3] == "<a "
