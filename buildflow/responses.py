"""Responses a handler may return for full control of status, headers and body.

Plain data (the body is rendered here, the server only sends it), so handlers stay testable
without a server. Returning an aiohttp ``web.Response`` works too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote


class Response:
    media_type: str | None = None

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.headers = dict(headers or {})
        #: ``Set-Cookie`` values, one header each (``headers`` holds one value per name).
        self.cookies: list[str] = []
        if media_type is not None:
            self.media_type = media_type
        self.body = self.render(content)

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: int | None = None,
        expires: datetime | str | int | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = "lax",
    ) -> None:
        """Starlette's arguments: ``expires`` a datetime, an HTTP date or seconds from now."""
        from http.cookies import SimpleCookie

        jar: SimpleCookie = SimpleCookie()
        jar[key] = value
        cookie = jar[key]
        if max_age is not None:
            cookie["max-age"] = str(max_age)
        if expires is not None:
            cookie["expires"] = format_datetime(expires, usegmt=True) if isinstance(expires, datetime) else expires
        if path is not None:
            cookie["path"] = path
        if domain is not None:
            cookie["domain"] = domain
        cookie["secure"] = secure
        cookie["httponly"] = httponly
        if samesite is not None:
            if samesite.lower() not in ("strict", "lax", "none"):
                raise ValueError(f"samesite must be 'strict', 'lax' or 'none', got {samesite!r}")
            cookie["samesite"] = samesite
        self.cookies.append(cookie.OutputString())

    def delete_cookie(
        self,
        key: str,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = "lax",
    ) -> None:
        self.set_cookie(key, "", 0, 0, path, domain, secure, httponly, samesite)

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        if isinstance(content, bytes):
            return content
        return str(content).encode()


class PlainTextResponse(Response):
    media_type = "text/plain"


class HTMLResponse(Response):
    media_type = "text/html"


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), default=str).encode()


class StreamingResponse(Response):
    """A body produced piece by piece by an (async) iterator of bytes or str, sent chunked."""

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        super().__init__(None, status_code, headers, media_type)
        self.body_iterator = content


class FileResponse(Response):
    """A file from disk, streamed (with ranges and conditional requests handled)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        filename: str | None = None,
        content_disposition_type: str = "attachment",
    ) -> None:
        headers = dict(headers or {})
        if filename is not None:
            quoted = quote(filename)
            named = f"filename*=utf-8''{quoted}" if quoted != filename else f'filename="{filename}"'
            headers.setdefault("Content-Disposition", f"{content_disposition_type}; {named}")
        super().__init__(None, status_code, headers, media_type)
        self.path = os.fspath(path)


class RedirectResponse(Response):
    def __init__(self, url: Any, status_code: int = 307, headers: Mapping[str, str] | None = None) -> None:
        """``url`` a string or a request's ``URL``; characters a URL cannot hold are quoted."""
        location = quote(str(url), safe=":/%#?=@[]!$&'()*+,;")
        super().__init__(None, status_code, {**(headers or {}), "Location": location})


__all__ = [
    "FileResponse",
    "HTMLResponse",
    "JSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Response",
    "StreamingResponse",
]
