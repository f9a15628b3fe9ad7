"""The declared middleware of a service, applied to its handlers when the app is built."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bfctl.runtime.errors import StartupError
from bfctl.runtime.responses import json_response
from bfctl.runtime.sessions import Sessions
from buildflow.middleware import CORSMiddleware, HTTPSRedirectMiddleware, SessionMiddleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SAFE_HEADERS = {"accept", "accept-language", "content-language", "content-type"}


class Cors:
    """CORS as Starlette does it: simple requests get the headers, preflights are answered."""

    def __init__(self, options: CORSMiddleware) -> None:
        self.allow_all_origins = "*" in options.allow_origins
        self.origins = frozenset(options.allow_origins)
        self.origin_regex = re.compile(options.allow_origin_regex) if options.allow_origin_regex else None
        self.methods = (
            ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
            if "*" in options.allow_methods
            else sorted({m.upper() for m in options.allow_methods})
        )
        self.allow_all_headers = "*" in options.allow_headers
        self.headers = sorted(_SAFE_HEADERS | {h.lower() for h in options.allow_headers if h != "*"})
        self.credentials = options.allow_credentials
        self.expose = ", ".join(options.expose_headers)
        self.max_age = str(options.max_age)

    def allowed(self, origin: str) -> bool:
        if self.allow_all_origins or origin in self.origins:
            return True
        return bool(self.origin_regex and self.origin_regex.fullmatch(origin))

    def _origin_headers(self, origin: str) -> dict[str, str]:
        explicit = not self.allow_all_origins or self.credentials
        headers = {"Access-Control-Allow-Origin": origin if explicit else "*"}
        if explicit:
            headers["Vary"] = "Origin"
        if self.credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    async def preflight(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin", "")
        method = request.headers.get("Access-Control-Request-Method", "").upper()
        asked = [
            h.strip().lower() for h in request.headers.get("Access-Control-Request-Headers", "").split(",") if h.strip()
        ]
        problems = []
        if not self.allowed(origin):
            problems.append("origin")
        if method not in self.methods:
            problems.append("method")
        if not self.allow_all_headers and any(h not in self.headers for h in asked):
            problems.append("headers")
        if problems:
            return json_response({"detail": f"Disallowed CORS {', '.join(problems)}"}, 400)
        headers = {
            **self._origin_headers(origin),
            "Access-Control-Allow-Methods": ", ".join(self.methods),
            "Access-Control-Allow-Headers": ", ".join(asked) if self.allow_all_headers else ", ".join(self.headers),
            "Access-Control-Max-Age": self.max_age,
        }
        return web.Response(status=200, text="OK", headers=headers)

    def wrap(self, handle: Handler) -> Handler:
        async def with_cors(request: web.Request) -> web.StreamResponse:
            response = await handle(request)
            origin = request.headers.get("Origin")
            if origin is not None and self.allowed(origin) and not response.prepared:
                response.headers.update(self._origin_headers(origin))
                if self.expose:
                    response.headers["Access-Control-Expose-Headers"] = self.expose
            return response

        return with_cors


def _https_redirect(handle: Handler) -> Handler:
    async def redirect(request: web.Request) -> web.StreamResponse:
        proto = request.headers.get("X-Forwarded-Proto", request.scheme)
        if proto != "https":
            raise web.HTTPTemporaryRedirect(str(request.url.with_scheme("https").with_port(None)))
        return await handle(request)

    return redirect


def apply(middleware: list[Any], handle: Handler) -> tuple[Handler, Cors | None]:
    """``handle`` with the service's middleware around it, and its CORS rules (for preflights)."""
    cors = None
    for declared in reversed(middleware):  # the first declared is the outermost
        if isinstance(declared, CORSMiddleware):
            cors = Cors(declared)
            handle = cors.wrap(handle)
        elif isinstance(declared, HTTPSRedirectMiddleware):
            handle = _https_redirect(handle)
        elif isinstance(declared, SessionMiddleware):
            handle = Sessions(declared).wrap(handle)
        else:
            raise StartupError(f"unknown middleware {type(declared).__name__}: use one from buildflow.middleware")
    return handle, cors
