"""``SessionMiddleware``: a request's session as a JSON object in a cookie signed with HMAC-SHA256.

The cookie is ``<payload>.<issued>.<signature>`` (URL-safe base64, the issue time in seconds);
a cookie whose signature does not match, that is older than ``max_age`` or that does not hold a
JSON object starts an empty session. Only the routes of a service that declares it pay for it.

A session whose cookie would pass what browsers keep is refused when it is saved: a browser drops
such a cookie without a word (the session is lost on the next request), so the response becomes a
500 whose log line names the size. It is the flow's bug, not the client's: keep ids in the
session and what they point to in a database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from bfctl.runtime.errors import StartupError
from bfctl.runtime.responses import server_error
from buildflow.middleware import SESSION_KEY, SessionMiddleware
from buildflow.secrets import SecretNotFoundError, reveal

if TYPE_CHECKING:
    from bfctl.runtime.middleware import Handler

_SAME_SITE = ("lax", "strict", "none")
#: Bytes of one cookie's name and value that browsers keep (RFC 6265 asks for at least this much,
#: and Chrome, Firefox and Safari keep no more).
COOKIE_LIMIT = 4096


class SessionTooLarge(Exception):
    """A session whose cookie no browser would keep."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and checks session cookies with one key."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def _signature(self, payload: str, issued: str) -> str:
        return _b64(hmac.new(self._key, f"{payload}.{issued}".encode(), hashlib.sha256).digest())

    def sign(self, session: dict[str, Any], issued: int) -> str:
        payload = _b64(orjson.dumps(session))
        return f"{payload}.{issued}.{self._signature(payload, str(issued))}"

    def load(self, cookie: str, max_age: int | None, now: float) -> dict[str, Any] | None:
        """The session in ``cookie``, or None when it is not one this key signed, or too old."""
        payload, _, rest = cookie.partition(".")
        issued, _, signature = rest.partition(".")
        if not hmac.compare_digest(signature, self._signature(payload, issued)):
            return None
        if not issued.isdigit() or (max_age is not None and now - int(issued) > max_age):
            return None
        try:
            value = orjson.loads(_unb64(payload))
        except (binascii.Error, ValueError):
            return None
        return value if isinstance(value, dict) else None


class Sessions:
    """The session cookie of one service's routes."""

    def __init__(self, options: SessionMiddleware) -> None:
        try:
            key = reveal(options.secret_key)
        except SecretNotFoundError as e:
            raise StartupError(f"SessionMiddleware secret_key: {e}") from None
        if not key:
            raise StartupError("SessionMiddleware needs a secret_key (a long random value, e.g. a Secret)")
        if options.same_site.lower() not in _SAME_SITE:
            raise StartupError(
                f"SessionMiddleware same_site {options.same_site!r} is not one of: {', '.join(_SAME_SITE)}"
            )
        self.signer = Signer(key)
        self.options = options

    def wrap(self, handle: Handler) -> Handler:
        name, options, signer, clock = self.options.session_cookie, self.options, self.signer, time.time
        same_site = options.same_site.lower()

        async def with_session(request: web.Request) -> web.StreamResponse:
            cookie = request.cookies.get(name)
            session = (signer.load(cookie, options.max_age, clock()) if cookie else None) or {}
            request[SESSION_KEY] = session
            response = await handle(request)
            if response.prepared:  # streamed: its headers are gone
                return response
            if session:
                value = signer.sign(session, int(clock()))
                if len(name) + len(value) > COOKIE_LIMIT:
                    return server_error(request, "SessionMiddleware", _too_large(name, value))
                response.set_cookie(
                    name,
                    value,
                    max_age=options.max_age,
                    path=options.path,
                    domain=options.domain,
                    secure=options.https_only,
                    httponly=True,
                    samesite=same_site,
                )
            elif cookie is not None:  # emptied: forget it
                response.del_cookie(name, path=options.path, domain=options.domain)
            return response

        return with_session


def _too_large(name: str, value: str) -> SessionTooLarge:
    return SessionTooLarge(
        f"the session cookie `{name}` would be {len(name) + len(value):,} bytes, over the {COOKIE_LIMIT:,} "
        "browsers keep (they drop it without a word, and the session with it): keep ids in the session "
        "and what they point to in a database"
    )
