"""Middleware a service can declare (``service.add_middleware(CORSMiddleware, ...)``), with
the options and meaning of the Starlette classes BuildFlow re-exported. Declarations only: the
runtime applies them to that service's routes, and routes without middleware pay nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from buildflow.exceptions.exceptions import FlowDeclarationError
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


#: Starlette's classes (FastAPI re-exports them) as BuildFlow flows imported them, by module and
#: name: the same options and meaning, so each stands for ours. Starlette is never imported.
_STARLETTE: dict[tuple[str, str], type] = {
    ("starlette.middleware.cors", "CORSMiddleware"): CORSMiddleware,
    ("starlette.middleware.httpsredirect", "HTTPSRedirectMiddleware"): HTTPSRedirectMiddleware,
    ("starlette.middleware.sessions", "SessionMiddleware"): SessionMiddleware,
}


def declare(middleware_type: type, options: Mapping[str, Any]) -> Any:
    """What ``service.add_middleware(middleware_type, **options)`` declares; Starlette's
    classes stand for ours, and other Starlette middleware is refused here, at import, since
    the server (aiohttp) cannot run it."""
    if any(c.__module__.partition(".")[0] == "starlette" for c in middleware_type.__mro__):
        ours = _STARLETTE.get((middleware_type.__module__, middleware_type.__qualname__))
        if ours is None:
            raise FlowDeclarationError(
                f"{middleware_type.__qualname__} is Starlette middleware, which bfctl's server does not run; "
                "use CORSMiddleware, HTTPSRedirectMiddleware or SessionMiddleware (from buildflow.middleware, "
                "Starlette or FastAPI)"
            )
        middleware_type = ours
    return middleware_type(**options)


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


__all__ = ["CORSMiddleware", "HTTPSRedirectMiddleware", "SessionMiddleware", "declare", "middleware_secrets"]
