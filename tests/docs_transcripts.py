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

import http.cookiejar
import re
import shlex
import sys
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
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


@dataclass
class Curl:
    """What ``curl`` prints for the arguments pages use: ``-s``, ``-X``, ``-d``, ``--json``, ``-H``,
    ``-F`` (a form field, ``name=@file`` a file of the project), ``-b``/``-c`` (a cookie jar) and a
    URL on port 8000."""

    cwd: Path
    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)

    def __call__(self, server: Server, argv: list[str]) -> str:
        method, body, headers, url, default_type = None, None, {}, "", None
        fields: list[tuple[str, str]] = []
        send_cookies = keep_cookies = False
        args = iter(argv[1:])
        for arg in args:
            if arg == "-X":
                method = next(args)
            elif arg in ("-d", "--json"):
                body = next(args).encode()
                # curl's own content type for -d; --json (curl 7.82+) sends JSON's; -H wins
                default_type = "application/json" if arg == "--json" else "application/x-www-form-urlencoded"
            elif arg == "-H":
                name, _, value = next(args).partition(":")
                headers[name.strip()] = value.strip()
            elif arg == "-F":
                name, _, value = next(args).partition("=")
                fields.append((name, value))
            elif arg in ("-b", "-c"):
                next(args)  # the jar's file: one jar per transcript here
                send_cookies, keep_cookies = send_cookies or arg == "-b", keep_cookies or arg == "-c"
            elif arg != "-s":
                url = re.sub(r"^(http://)?(localhost|127\.0\.0\.1):8000", "", arg)
        if fields:
            body, default_type = self._multipart(fields)
        if default_type:
            headers.setdefault("Content-Type", default_type)
        request = urllib.request.Request(
            server.url + url, data=body, method=method or ("POST" if body else "GET"), headers=headers
        )
        if send_cookies:
            self.jar.add_cookie_header(request)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                if keep_cookies:
                    self.jar.extract_cookies(response, request)
                return response.read().decode()
        except urllib.error.HTTPError as error:
            return error.read().decode()

    def _multipart(self, fields: list[tuple[str, str]]) -> tuple[bytes, str]:
        boundary = "------------------------docs"
        parts = []
        for name, value in fields:
            if value.startswith("@"):
                path = self.cwd / value[1:]
                head = f'name="{name}"; filename="{path.name}"\r\nContent-Type: text/plain'
                content = path.read_bytes()
            else:
                head, content = f'name="{name}"', value.encode()
            parts.append(f"--{boundary}\r\nContent-Disposition: form-data; {head}\r\n\r\n".encode() + content + b"\r\n")
        return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


#: How a transcript's programs are run here: the interpreter of the tests, never one on PATH.
_PROGRAMS = {"bfctl": ["-m", "bfctl"], "pytest": ["-m", "pytest"], "python": []}

#: Where the pages show the reader's project folder.
SHOWN_FOLDER = "/home/me/projects"


def replay(transcript: Path, project: Path, env: dict[str, str]) -> None:
    """Run every command of ``transcript`` in ``project`` and check what the page shows for it."""
    import subprocess

    cwd, root = project, str(project)
    curl = Curl(project)
    with ExitStack() as running:
        server: Server | None = None
        for step in steps(transcript.read_text()):
            argv = shlex.split(step.command, comments=True)
            if argv[0] == "cd":
                cwd = curl.cwd = cwd / argv[1]
                actual: list[str] = []
            elif argv[0] == "curl":
                assert server is not None, f"{transcript.name}: `{step.command}` before anything serves"
                actual = curl(server, argv).splitlines()
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
