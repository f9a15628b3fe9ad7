"""Replaying the console transcripts the documentation shows (``docs_src/**/*.out``).

A page includes a transcript file as it includes an example's code, and a test replays it in a
project folder made of the page's example files: each ``$ bfctl ...`` line runs the real CLI in
a subprocess, ``$ bfctl serve``/``$ python main.py`` start the flow (on a free port, shown as
8000), each ``$ curl ...`` is sent to it over loopback, and what came back must be what the page
shows. So a page cannot claim an output its example does not give.

Matching: numbers that differ from run to run (a duration, a port, a hash in an image tag or a
file name) are masked on both sides, and a line ``...`` stands for any number of lines.
"""

from __future__ import annotations

import re
import shlex
import sys
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from support import REPO_ROOT, Server, serving

DOCS_SRC = REPO_ROOT / "docs_src"

_MASKS = [
    (re.compile(r"\(\d+(\.\d+)?s\)"), "(Ns)"),
    (re.compile(r"\bin \d+\.\d+s\b"), "in Ns"),
    (re.compile(r"(127\.0\.0\.1|localhost):\d+"), r"\1:PORT"),
    (re.compile(r"\bport = \d+"), "port = PORT"),
    (re.compile(r"\b[0-9a-f]{12,}\b"), "HASH"),  # an image tag, a revision id
]


@dataclass
class Step:
    """One ``$`` line of a transcript and the lines shown after it."""

    command: str
    expected: list[str]


def steps(transcript: str) -> list[Step]:
    """The transcript's commands, each with the output the page shows for it."""
    found: list[Step] = []
    for line in transcript.splitlines():
        if line.startswith("$ "):
            found.append(Step(line[2:], []))
        else:
            assert found, f"a transcript starts with a command, not {line!r}"
            found[-1].expected.append(line)
    return found


def _masked(line: str) -> str:
    for pattern, replacement in _MASKS:
        line = pattern.sub(replacement, line)
    return line.rstrip()


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` is what ``expected`` shows, ``...`` matching any run of lines."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and _masked(expected[0]) == _masked(actual[0]) and matches(expected[1:], actual[1:])


def _curl(server: Server, argv: list[str]) -> str:
    """What ``curl`` would print for these arguments (``-s``, ``-X``, ``-d``, ``--json``, ``-H``, a URL)."""
    method, body, headers, url = None, None, {}, ""
    args = iter(argv[1:])
    for arg in args:
        if arg == "-X":
            method = next(args)
        elif arg == "-d":
            body = next(args).encode()
        elif arg == "--json":  # curl 7.82+: a JSON body, with its content type
            body = next(args).encode()
            headers["Content-Type"] = "application/json"
        elif arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg != "-s":
            url = re.sub(r"^(http://)?(localhost|127\.0\.0\.1):8000", "", arg)
    if body is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")  # curl's own default
    request = urllib.request.Request(
        server.url + url, data=body, method=method or ("POST" if body else "GET"), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode()
    except urllib.error.HTTPError as error:
        return error.read().decode()


#: How a transcript's programs are run here: the interpreter of the tests, never one on PATH.
_PROGRAMS = {"bfctl": ["-m", "bfctl"], "pytest": ["-m", "pytest"], "python": []}

#: Where the pages show the reader's project folder.
SHOWN_FOLDER = "/home/me/projects"


def replay(transcript: Path, project: Path, env: dict[str, str]) -> None:
    """Run every command of ``transcript`` in ``project`` and check what the page shows for it."""
    import subprocess

    cwd, root = project, str(project)
    with ExitStack() as running:
        server: Server | None = None
        for step in steps(transcript.read_text()):
            argv = shlex.split(step.command, comments=True)
            if argv[0] == "cd":
                cwd = cwd / argv[1]
                actual: list[str] = []
            elif argv[0] == "curl":
                assert server is not None, f"{transcript.name}: `{step.command}` before anything serves"
                actual = _curl(server, argv).splitlines()
            elif argv[:2] == ["bfctl", "serve"] or (argv[0] == "python" and argv[1].endswith(".py")):
                if argv[0] == "python":
                    started = serving(argv[1:], cwd, {**env, "PORT": "0"}, command=[sys.executable])
                else:
                    started = serving([*argv[2:], "--port", "0"], cwd, env)
                server = running.enter_context(started)
                server.wait_for(lambda _line: True, count=len(step.expected))
                actual = server.lines[: len(step.expected)]
            else:
                assert argv[0] in _PROGRAMS, f"{transcript.name}: no way to replay `{step.command}`"
                result = subprocess.run(
                    [sys.executable, *_PROGRAMS[argv[0]], *argv[1:]],
                    cwd=cwd,
                    env={**env, "COLUMNS": "80"},
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    check=False,
                    timeout=120,
                )
                actual = result.stdout.replace(root, SHOWN_FOLDER).splitlines()
            if server:
                actual = [line.replace(f":{server.url.rsplit(':', 1)[1]}", ":8000") for line in actual]
            assert matches(step.expected, actual), (
                f"{transcript.relative_to(REPO_ROOT)}: `{step.command}` shows\n"
                + "\n".join(step.expected)
                + "\nbut printed\n"
                + "\n".join(actual)
            )
