"""The per-request objects handed to whatever asks for them, built on first use."""

from __future__ import annotations

from typing import Any

from bfctl.runtime.parameters import Source
from buildflow.requests import Request, WebSocket


class RequestContext:
    __slots__ = ("_request", "raw", "websocket")

    def __init__(self, raw: Any, websocket: WebSocket | None = None) -> None:
        self.raw = raw
        self.websocket = websocket
        self._request: Request | None = None

    def get(self, source: Source) -> Any:
        if source is Source.RAW_REQUEST:
            return self.raw
        if source is Source.WEBSOCKET:  # None on HTTP: what BuildFlow's `websocket: WebSocket = None` expects
            return self.websocket
        if self._request is None:
            self._request = Request(self.raw)
        return self._request
