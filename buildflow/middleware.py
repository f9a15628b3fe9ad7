"""Middleware a service can declare (``service.add_middleware(CORSMiddleware, ...)``), with
the options and meaning of the Starlette classes BuildFlow re-exported. Declarations only: the
runtime applies them to that service's routes, and routes without middleware pay nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from buildflow.secrets import Secret


@dataclasses.dataclass
class CORSMiddleware:
    """Cross-origin requests: answers preflight ``OPTIONS`` and adds the CORS headers."""

    allow_origins: Sequence[str] = ()
    allow_methods: Sequence[str] = ("GET",)
    allow_headers: Sequence[str] = ()
    allow_credentials: bool = False
    allow_origin_regex: str | None = None
    expose_headers: Sequence[str] = ()
    max_age: int = 600


@dataclasses.dataclass
class HTTPSRedirectMiddleware:
    """Sends plain-HTTP requests to the same URL over HTTPS (307), honouring
    ``X-Forwarded-Proto`` from a proxy in front."""


@dataclasses.dataclass
class SessionMiddleware:
    """Sessions in a signed cookie: ``request.session`` is a dict the handler reads and changes;
    it comes back with the next request unless the cookie was tampered with or is older than
    ``max_age`` seconds (None: until the browser closes). Keep it small (a cookie holds about
    4 KB) and free of secrets: it is signed, not encrypted. ``secret_key`` may be a
    ``buildflow.secrets.Secret``, read when the service starts."""

    secret_key: str | Secret = dataclasses.field(repr=False, default="")
    session_cookie: str = "session"
    max_age: int | None = 14 * 24 * 60 * 60
    path: str = "/"
    same_site: str = "lax"
    https_only: bool = False
    domain: str | None = None


def __getattr__(name: str) -> Any:
    """``SESSION_KEY``: where the runtime keeps a request's session for ``Request.session``, an
    aiohttp request key made on first use (declaring middleware does not import the server)."""
    if name != "SESSION_KEY":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from aiohttp import web

    key = web.RequestKey("buildflow.session", dict)
    globals()["SESSION_KEY"] = key
    return key


def middleware_secrets(services: Iterable[Any]) -> tuple[Secret, ...]:
    """The Secrets the services' middleware is keyed with, each once: a target provides them as
    it does database passwords (generated and kept when not given)."""
    found = [
        m.secret_key
        for service in services
        for m in getattr(service, "middleware", ())
        if isinstance(m, SessionMiddleware) and isinstance(m.secret_key, Secret)
    ]
    return tuple(dict.fromkeys(found))


__all__ = ["CORSMiddleware", "HTTPSRedirectMiddleware", "SessionMiddleware", "middleware_secrets"]
