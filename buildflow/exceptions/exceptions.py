"""Error types shared by the SDK, the runtime and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any


class HTTPException(Exception):
    """Raise from a handler or a dependency to answer with ``status_code`` and a JSON body."""

    def __init__(
        self,
        status_code: int,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if detail is None:
            try:
                detail = HTTPStatus(status_code).phrase
            except ValueError:
                detail = "Error"
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"HTTPException(status_code={self.status_code!r}, detail={self.detail!r})"


class WebSocketDisconnect(Exception):
    """Raised by ``WebSocket.receive_*`` when the peer has closed the connection."""

    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class FlowDeclarationError(ValueError):
    """A flow module declares something that cannot work (caught before serving)."""


class DependencyError(FlowDeclarationError):
    """A dependency graph that cannot be resolved (reported when the app starts)."""


class DependencyCycleError(DependencyError):
    """Dependencies that need each other, directly or through others."""


class InvalidDependencyHierarchyOrder(DependencyError):
    """A wider-scoped dependency needs a narrower-scoped one (BuildFlow's name)."""

    def __init__(
        self,
        invalid_dep_name: str,
        invalid_dep_scope: str,
        source_scope: str,
        source_name: str | None = None,
    ) -> None:
        where = (
            f"`{source_name}` (scope {source_scope})"
            if source_name
            else (f"a dependency with a scope of {source_scope}")
        )
        super().__init__(
            f"Dependency `{invalid_dep_name}` has a scope of {invalid_dep_scope} and cannot be "
            f"used in {where}: a dependency may only use dependencies of the same or a wider "
            "scope (GLOBAL > REPLICA > PROCESS; NO_SCOPE anywhere)."
        )
        self.invalid_dep_name = invalid_dep_name
        self.invalid_dep_scope = invalid_dep_scope
        self.source_scope = source_scope
        self.source_name = source_name
