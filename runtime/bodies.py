"""Request bodies: what is refused before one is read, and the errors met while reading one that
are the client's doing, answered as 4xx.

A JSON parameter is read only from a JSON media type (``refuse_non_json``): the cross-site request
pattern FastAPI closed in CVE-2021-32677.

Compressed bodies are refused (415): decompressing is where a small request turns into gigabytes
of work (a 4 MB gzip body expands to 4 GiB), and no client of an API needs it. aiohttp's own
decompression is turned off (``AUTO_DECOMPRESS``), so a handler that reads the body itself gets
the bytes as sent, as Starlette hands them over.

aiohttp reports a broken body in many ways: its own HTTP errors (a bad multipart header line),
``RequestPayloadError`` (a broken chunked body), ``ValueError`` (a form it cannot split, text
it cannot decode, base64 that is not), ``LookupError`` (a charset no codec has), ``RuntimeError``
(an unknown Content-Transfer-Encoding). The last three are also what a handler's own bug
raises, so they are the client's only when aiohttp's request reading is in their traceback: it
calls no code of the flow, so what it raised came from the body. Checked only for errors, never
on a request that succeeds. A request whose framing aiohttp cannot parse
(a broken chunk size, say) never reaches the flow: aiohttp answers it 400 itself, and
``PROTOCOL_LOG`` logs it as one warning line instead of an error with a traceback.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bfctl.runtime.errors import ClientError

#: aiohttp's request handler setting: bodies are never decompressed as they arrive.
AUTO_DECOMPRESS = False
_IDENTITY = frozenset({"", "identity"})
_ACCEPT_IDENTITY = {"Accept-Encoding": "identity"}
#: aiohttp's modules that read a request's body (``read``, ``text``, ``post``, ``multipart``).
_READERS = frozenset({"aiohttp.web_request", "aiohttp.multipart"})
#: Characters of aiohttp's message kept in the answer (it may quote a whole header line).
_LONGEST = 200
_FORMS = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})


def refuse_encoded(raw: Any) -> None:
    """415 for a body with a content coding (``Content-Encoding: gzip``...), before it is read."""
    coding = raw.headers.get("Content-Encoding")
    if coding is not None and coding.strip().lower() not in _IDENTITY:
        raise ClientError(
            415,
            {"detail": f"Content-Encoding {coding!r} is not accepted: send the body uncompressed"},
            _ACCEPT_IDENTITY,
        )


def refuse_non_json(raw: Any) -> None:
    """415 for a body sent to a JSON parameter under another media type: a cross-site page may
    post ``text/plain`` or a form without a CORS preflight, never ``application/json``. A missing
    Content-Type reads as JSON, as FastAPI reads it (``requests.post(url, data=text)`` sends none;
    a page can send none only with a typeless Blob, and no cookie of ours goes with it: sessions
    are SameSite=Lax by default)."""
    if not raw.headers.get("Content-Type"):
        return
    media = raw.content_type
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return
    raise ClientError(
        415, {"detail": f"The body is read as JSON: send it as application/json (or application/*+json), not {media}"}
    )


def client_fault(raw: Any, exc: BaseException) -> ClientError | None:
    """The 4xx answering ``exc`` when reading ``raw``'s body raised it; None for anything else."""
    if isinstance(exc, (HttpProcessingError, web.RequestPayloadError)):
        return _malformed(raw, exc)
    if not isinstance(exc, (ValueError, LookupError, RuntimeError)) or not _raised_by_reader(exc.__traceback__):
        return None
    if type(exc) is LookupError:  # codecs.lookup: a charset Python has no codec for
        return ClientError(415, {"detail": f"Unsupported charset in the request body: {exc}"})
    return _malformed(raw, exc)


def _malformed(raw: Any, exc: BaseException) -> ClientError:
    kind = "form" if raw.content_type in _FORMS else "request"
    return ClientError(400, {"detail": f"Malformed {kind} body: {_reason(exc)}"})


def _reason(exc: BaseException) -> str:
    """One line: aiohttp's HTTP errors put their code before the message, and a payload error
    wraps the one that says what was wrong."""
    while isinstance(exc, web.RequestPayloadError) and exc.__cause__ is not None:
        exc = exc.__cause__
    text = " ".join((exc.message if isinstance(exc, HttpProcessingError) else str(exc)).split())
    return (text[:_LONGEST] + "...") if len(text) > _LONGEST else text or type(exc).__name__


def _raised_by_reader(tb: TracebackType | None) -> bool:
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") in _READERS:
            return True
        tb = tb.tb_next
    return False


class _ProtocolLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's connection log (``aiohttp.server``), where a client's broken request is one warning."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, (HttpProcessingError, web.RequestPayloadError)):
            self.warning("a request that breaks HTTP's rules was refused: %s", _reason(exc_info))
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


#: The ``logger`` of aiohttp's request handler.
PROTOCOL_LOG = _ProtocolLog(logging.getLogger("aiohttp.server"))
