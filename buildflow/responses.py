"""Responses a handler may return for full control of status, headers and body.

Plain data (the body is rendered here, the server only sends it), so handlers stay testable
without a server. Returning an aiohttp ``web.Response`` works too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any


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
        if media_type is not None:
            self.media_type = media_type
        self.body = self.render(content)

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
    ) -> None:
        headers = dict(headers or {})
        if filename is not None:
            headers.setdefault("Content-Disposition", f'attachment; filename="{filename}"')
        super().__init__(None, status_code, headers, media_type)
        self.path = os.fspath(path)


class RedirectResponse(Response):
    def __init__(self, url: str, status_code: int = 307, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(None, status_code, {**(headers or {}), "Location": url})


__all__ = [
    "FileResponse",
    "HTMLResponse",
    "JSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Response",
    "StreamingResponse",
]
