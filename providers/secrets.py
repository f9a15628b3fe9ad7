"""Secrets in state: kept only as a salted SCRAM-SHA-256 verifier, never in plain text.

The verifier is PostgreSQL's own password format, so the local target can hand it to
``CREATE ROLE ... PASSWORD`` (the plain password never reaches the server or its log) and
compare it with ``pg_authid`` on refresh; any target can use it to tell whether a declared
secret changed without storing the secret.
"""

from __future__ import annotations

import base64
import functools
import hmac
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scramp import ScramMechanism

_PREFIX = "SCRAM-SHA-256$"
_ITERATIONS = 4096  # PostgreSQL's default scram_iterations


@functools.cache
def _mechanism() -> ScramMechanism:
    """Made on first use: scramp (and asn1crypto under it) is a long import that serving a flow
    without secrets does not need."""
    from scramp import ScramMechanism

    return ScramMechanism("SCRAM-SHA-256")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def scram_verifier(secret: str, salt: bytes | None = None, iterations: int = _ITERATIONS) -> str:
    """``SCRAM-SHA-256$<iterations>:<salt>$<stored key>:<server key>`` for ``secret``."""
    salt, stored_key, server_key, iterations = _mechanism().make_auth_info(secret, iterations, salt)
    return f"{_PREFIX}{iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def is_verifier(value: object) -> bool:
    return isinstance(value, str) and value.startswith(_PREFIX)


def secret_matches(secret: str, verifier: object) -> bool:
    """True when ``verifier`` was made from ``secret`` (constant-time comparison)."""
    from scramp import ScramException

    if not isinstance(verifier, str) or not is_verifier(verifier):
        return False
    try:
        head, _keys = verifier[len(_PREFIX) :].split("$", 1)
        iterations, salt = head.split(":", 1)
        expected = scram_verifier(secret, base64.b64decode(salt), int(iterations))
    except (ValueError, ScramException):
        return False
    return hmac.compare_digest(expected, verifier)
