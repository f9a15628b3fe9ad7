"""Middleware a service can declare (``service.add_middleware(CORSMiddleware, ...)``), with
the options and meaning of the Starlette classes BuildFlow re-exported. Declarations only: the
runtime applies them to that service's routes, and routes without middleware pay nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


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
    """Signed-cookie sessions (declared for compatibility; the runtime refuses it at start-up
    until it supports it, rather than serving without sessions)."""

    secret_key: str = dataclasses.field(repr=False, default="")
    session_cookie: str = "session"
    max_age: int | None = 14 * 24 * 60 * 60
    same_site: str = "lax"
    https_only: bool = False


__all__ = ["CORSMiddleware", "HTTPSRedirectMiddleware", "SessionMiddleware"]
