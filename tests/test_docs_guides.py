"""The guides' examples (docs_src/guides/) run as the pages show them.

Each example folder is copied into a new project, as a reader would copy it, and its console
transcripts (``*.out``) are replayed there with real ``bfctl`` subprocesses: what the page shows
must be what comes back.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from docs_transcripts import DOCS_SRC, SHOWN_FOLDER, Curl, matches, replay, steps
from support import REPO_ROOT, Server, run_bfctl, serving, wait_until

GUIDES = DOCS_SRC / "guides"


def project_of(example: str, tmp_path: Path) -> Path:
    """The example's folder copied into a new project (transcripts stay behind)."""
    project = tmp_path / example
    shutil.copytree(GUIDES / example, project, ignore=shutil.ignore_patterns("*.out", "__pycache__"))
    return project


def test_testing_guide_runs_its_tests_with_pytest(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    """The test file of the testing guide passes under pytest run in the project folder."""
    project = project_of("testing", tmp_path)
    (step,) = steps((GUIDES / "testing" / "pytest.out").read_text())
    argv = step.command.split()
    assert argv[:3] == ["python", "-m", "pytest"]
    result = subprocess.run(
        [sys.executable, *argv[1:], "-p", "no:cacheprovider"],
        cwd=project,
        env=bfctl_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    timed = re.compile(r" in \d+\.\d+s$")
    shown, printed = ([timed.sub("", line) for line in lines] for lines in (step.expected, result.stdout.splitlines()))
    assert matches(shown, printed), result.stdout


def test_collectors_guide(tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]) -> None:
    """Rows of three collectors and a sink dependency are committed to the table the endpoint counts."""
    project = project_of("collectors", tmp_path)
    destroyed.append(project)
    replay(GUIDES / "collectors" / "collectors.out", project, bfctl_env)


@contextmanager
def serve_and_call(transcript: Path, project: Path, env: dict[str, str]) -> Iterator[Server]:
    """Replay a transcript that starts the flow with ``bfctl serve`` and then calls it, and yield
    the server still running, for what the flow does in the background (consumers)."""
    first, *calls = steps(transcript.read_text())
    argv = shlex.split(first.command)
    assert argv[:2] == ["bfctl", "serve"], first.command
    with serving([*argv[2:], "--port", "0"], project, env) as server:
        shown_after_serving = len(first.expected) - first.expected.index(
            next(s for s in first.expected if s.startswith("Serving"))
        )
        server.wait_for(lambda _line: True, count=len(server.lines) + shown_after_serving - 1)
        port = server.url.rsplit(":", 1)[1]
        assert matches(first.expected, [line.replace(f":{port}", ":8000") for line in server.lines]), server.output
        curl = Curl(project)
        for step in calls:
            assert matches(step.expected, curl(server, shlex.split(step.command)).splitlines()), step.command
        yield server


def test_consumers_guide(tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]) -> None:
    """Messages the collector published become the rows the page shows; the one the handler fails
    on is logged as the page shows, to be retried."""
    project = project_of("consumers", tmp_path)
    destroyed.append(project)
    shown_rows = [json.loads(line) for line in (GUIDES / "consumers" / "welcomes.jsonl").read_text().splitlines()]
    (shown_log,) = (GUIDES / "consumers" / "failed.log").read_text().splitlines()
    with serve_and_call(GUIDES / "consumers" / "consumers.out", project, bfctl_env) as server:

        def rows() -> list[dict[str, str]]:
            return [
                json.loads(line)
                for f in (project / "rows").glob("welcomes-*.jsonl")
                for line in f.read_text().splitlines()
            ]

        wait_until(lambda: len(rows()) >= len(shown_rows))
        server.wait_for(lambda line: "a message failed" in line)
    assert [f.name for f in (project / "rows").iterdir()] == [
        f.name for f in (project / "rows").glob("welcomes-????????.jsonl")
    ]
    assert sorted(rows(), key=str) == sorted(shown_rows, key=str)
    message = re.compile(r"message \d+")
    (logged,) = (line.split(" ", 2)[2] for line in server.lines if "a message failed" in line)
    assert message.sub("message N", logged) == message.sub("message N", shown_log)


def test_consumers_guide_watch_example(tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]) -> None:
    """examples/watch as the page shows it: a good file becomes rows of ``rows/readings-<8 hex>.csv``,
    a file that is not JSON is logged once and retried a second later, not at once."""
    project = tmp_path / "watch"
    shutil.copytree(REPO_ROOT / "examples" / "watch", project)
    destroyed.append(project)
    shown = GUIDES / "consumers"
    here = str(project)

    def as_shown(text: str) -> str:
        return text.replace(SHOWN_FOLDER, here)

    apply, serve = steps(as_shown((shown / "watch.out").read_text()))
    assert run_bfctl(shlex.split(apply.command)[1:], project, bfctl_env)[0] == 0
    with serving([*shlex.split(serve.command)[2:], "--port", "0"], project, bfctl_env) as server:
        server.wait_for(lambda line: line.startswith("Press Ctrl+C"))
        port = server.url.rsplit(":", 1)[1]
        assert matches(serve.expected, [line.replace(f":{port}", ":8000") for line in server.lines]), server.output
        (project / "incoming" / "kitchen.json").write_text('[{"sensor": "s1", "value": 21.5}]')
        (project / "incoming" / "broken.json").write_text("not json")
        server.wait_for(lambda line: "a message failed" in line)
        wait_until(
            lambda: (
                len(readings := list((project / "rows").glob("readings-????????.csv"))) == 1
                and len(readings[0].read_text().splitlines()) == 2
            )
        )
    (readings,) = (project / "rows").iterdir()
    assert readings.read_text() == as_shown((shown / "watch-readings.csv").read_text())
    (logged,) = (line.split(" ", 2)[2] for line in server.lines if "a message failed" in line)
    assert logged == as_shown((shown / "watch-bad.log").read_text()).strip()


def test_secrets_guide(tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]) -> None:
    """The generated password logs the handlers in, is kept where the page says with the modes it
    says, and is written nowhere else in the project."""
    project = project_of("secrets", tmp_path)
    destroyed.append(project)
    replay(GUIDES / "secrets" / "secrets.out", project, bfctl_env)
    secrets = project / ".buildflow" / "local" / "dev" / "secrets"
    kept = secrets / "ledger-db-password"
    assert (secrets.stat().st_mode & 0o777, kept.stat().st_mode & 0o777) == (0o700, 0o600)
    password = kept.read_text()
    assert len(password) >= 32
    elsewhere = [p for p in project.rglob("*") if p.is_file() and p != kept and password.encode() in p.read_bytes()]
    assert elsewhere == []


def test_pipedream_guide(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    """The dispatcher's results reach the handler by name; an HTTPException one raises is its answer."""
    replay(GUIDES / "pipedream" / "pipedream.out", project_of("pipedream", tmp_path), bfctl_env)


def test_analysis_queries_guide(tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]) -> None:
    """Rows collected into the analysis table are read back by the queries the page shows, from
    the DuckDB file the page names (the stack's folder under .buildflow/local/)."""
    project = project_of("analysis", tmp_path)
    destroyed.append(project)
    replay(GUIDES / "analysis" / "analysis.out", project, bfctl_env)
    database = project / ".buildflow" / "local" / "dev" / "analysis.duckdb"
    code, outputs = run_bfctl(["outputs"], project, bfctl_env)
    assert code == 0 and f"    database = {database}" in outputs.splitlines(), outputs


def test_ci_guide_workflow_runs_commands_bfctl_accepts(bfctl_env: dict[str, str], tmp_path: Path) -> None:
    """Every bfctl command of the workflow parses with the options it is given (an option bfctl
    lacks makes `--help` fail too), and the workflow has the plan and apply jobs the page describes."""
    import yaml

    workflow = yaml.safe_load((GUIDES / "ci" / "bfctl.yml").read_text())
    runs = [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    commands = [
        shlex.split(line.strip().split(">")[0])
        for run in runs
        for line in run.splitlines()
        if line.strip().startswith("bfctl ")
    ]
    assert [c[:2] for c in commands] == [["bfctl", "plan"], ["bfctl", "apply"]]
    assert {"--format", "markdown", "--detailed-exitcode"} <= set(commands[0]) and "--yes" in commands[1]
    for command in commands:
        code, out = run_bfctl([*command[1:], "--help"], tmp_path, bfctl_env)
        assert code == 0, out


def test_ci_guide_plan_comment(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    """The Markdown plan the page shows, with the password masked, and exit code 2 for changes."""
    project = project_of("secrets", tmp_path)
    replay(GUIDES / "ci" / "plan-comment.out", project, bfctl_env)
    (step,) = steps((GUIDES / "ci" / "plan-comment.out").read_text())
    assert run_bfctl(shlex.split(step.command)[1:], project, bfctl_env)[0] == 2


#: Alembic's revision ids are random.
REVISION = re.compile(r"(?<![0-9a-f])[0-9a-f]{12}(?![0-9a-f])")


def run_commands(transcript: Path, project: Path, env: dict[str, str]) -> None:
    """Run each command of a transcript that serves nothing (bfctl, or a shell tool such as grep)
    in ``project``: its output must be what the page shows, revision ids aside."""
    for step in steps(transcript.read_text()):
        argv = shlex.split(step.command)
        command = [sys.executable, "-m", "bfctl", *argv[1:]] if argv[0] == "bfctl" else step.command
        result = subprocess.run(
            command,
            shell=argv[0] != "bfctl",
            cwd=project,
            env={**env, "COLUMNS": "200"},
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=120,
        )
        shown = [REVISION.sub("REV", line.replace(SHOWN_FOLDER, str(project))) for line in step.expected]
        printed = [REVISION.sub("REV", line) for line in result.stdout.splitlines()]
        assert matches(shown, printed), f"`{step.command}` printed\n{result.stdout}"


def test_migrations_guide(tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]) -> None:
    """The tutorial's tasks project, then the guide's steps: a revision autogenerated from the
    changed model, applied; the db commands; a failing revision that leaves the database at the
    last good one."""
    project = tmp_path / "tasks"
    shutil.copytree(DOCS_SRC / "tutorial" / "database", project, ignore=shutil.ignore_patterns("__pycache__"))
    destroyed.append(project)
    assert run_bfctl(["apply", "--yes"], project, bfctl_env)[0] == 0
    shutil.copy(GUIDES / "migrations" / "models.py", project / "models.py")
    shown = GUIDES / "migrations"
    run_commands(shown / "autogenerate.out", project, bfctl_env)
    run_commands(shown / "commands.out", project, bfctl_env)
    code, out = run_bfctl(["db", "revision", "-m", "backfill due dates"], project, bfctl_env)
    assert code == 0, out
    (failing,) = (project / "migrations" / "versions").glob("*_backfill_due_dates.py")
    source = failing.read_text()
    upgrade = re.search(r"def upgrade\(\) -> None:\n(.*?)\n\n", source, re.DOTALL)
    assert upgrade is not None, source
    failing.write_text(
        source.replace(
            upgrade.group(0), 'def upgrade() -> None:\n    op.execute("update no_such_table set due = now()")\n\n'
        )
    )
    run_commands(shown / "failing.out", project, bfctl_env)


def test_dev_loop_guide(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    """bfctl dev on the tutorial's first flow: serves, serves again after a save, shows a save's
    mistake and waits, and serves the next good save, printing what the page shows each time."""
    project = tmp_path / "hello"
    project.mkdir()
    main = project / "main.py"
    shutil.copy(DOCS_SRC / "tutorial" / "first_flow.py", main)
    shown = GUIDES / "dev_loop"
    (start,) = steps((shown / "start.out").read_text())
    argv = shlex.split(start.command)
    with serving(
        [*argv[2:], "--port", "0"], project, bfctl_env, command=[sys.executable, "-m", "bfctl", "dev"]
    ) as server:
        port = server.url.rsplit(":", 1)[1]

        def as_shown(lines: list[str]) -> list[str]:
            return [line.replace(f":{port}", ":8000").replace(str(project), SHOWN_FOLDER) for line in lines]

        server.wait_for(lambda line: line.startswith("Press Ctrl+C"))
        assert matches([*start.expected, "..."], as_shown(server.lines)), server.output
        main.write_text(main.read_text().replace("Hello, ", "Hi, "))
        server.wait_for(lambda line: line.startswith("Press Ctrl+C"), count=2)
        assert server.get("/hello") == (200, '"Hi, world!"')
        good = main.read_text()
        main.write_text(good.replace("def item(item_id: int)", "def item(item_id: int"))
        server.wait_for(lambda line: line.startswith("Waiting for a change"))
        main.write_text(good)
        server.wait_for(lambda line: line.startswith("Press Ctrl+C"), count=3)
        assert server.stop() == 0
    printed = as_shown(server.lines)
    changed = [i for i, line in enumerate(printed) if line == "main.py changed: serving again."]
    assert len(changed) == 3, server.output
    saved, mistake = ((shown / name).read_text().splitlines() for name in ("saved.log", "mistake.log"))
    assert printed[changed[0] : changed[0] + len(saved)] == saved
    assert printed[changed[1] : changed[1] + len(mistake)] == mistake
    assert printed[changed[2] : changed[2] + len(saved)] == saved


def test_troubleshooting_messages(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    """The error messages the troubleshooting page quotes are what bfctl prints for its examples:
    a flow that cannot be found, one that cannot start, resources never applied or refused."""
    project = tmp_path / "projects"
    shutil.copytree(DOCS_SRC / "troubleshooting", project, ignore=shutil.ignore_patterns("*.out", "__pycache__"))
    shutil.copy(GUIDES / "secrets" / "main.py", project / "main.py")
    for transcript in ("finding.out", "startup.out", "resources.out"):
        run_commands(DOCS_SRC / "troubleshooting" / transcript, project, bfctl_env)


def test_every_guide_file_is_on_a_page() -> None:
    """What a test here runs is what a reader sees: every file under docs_src/guides and
    docs_src/troubleshooting is included by a page."""
    included = {
        name
        for page in (REPO_ROOT / "docs").rglob("*.md")
        for name in re.findall(r'^\s*--8<-- "([^"]+)"\s*$', page.read_text(), re.MULTILINE)
    }
    files = [p for folder in (GUIDES, DOCS_SRC / "troubleshooting") for p in folder.rglob("*") if p.is_file()]
    unshown = [p.relative_to(REPO_ROOT).as_posix() for p in files if "__pycache__" not in p.parts]
    assert [name for name in unshown if name not in included] == []
