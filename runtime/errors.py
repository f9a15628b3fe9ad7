"""Errors the runtime reports: before serving (the CLI prints them without a traceback), and
the client's, answered with a 4xx."""

from __future__ import annotations

from typing import Any


class StartupError(Exception):
    """The flow cannot be served as declared; ``str()`` says what and where."""


class DependencyStartupError(StartupError):
    """A GLOBAL or REPLICA dependency raised while it was built at start-up.

    ``str()`` names the dependency and gives the cause on one line; ``__cause__`` is what the
    dependency raised, so a caller can still show the user's frames (or all of them).
    """

    def __init__(self, dependency: str, scope: str, cause: BaseException) -> None:
        super().__init__(f"dependency `{dependency}` ({scope}) failed at start-up: {one_line(cause)}")
        self.dependency = dependency
        self.scope = scope
        self.cause = cause


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``: drivers' messages run to several lines
    (SQLAlchemy adds a link to its docs), a headline must not."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class ClientError(Exception):
    """The client sent something unusable: answered with ``status`` and a JSON ``body``."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}
