"""Google sign-in: a dependency that verifies a Google ID token and exposes the user.

No postponed annotations here: the dependency class below is built inside a function and
its annotations must be evaluated where the local names exist.
"""

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from buildflow.dependencies.headers import BearerCredentials, OptionalBearerCredentials, SecurityHeader
from buildflow.dependencies.scopes import Scope, dependency
from buildflow.exceptions import HTTPException
from buildflow.requests import Request


@dataclasses.dataclass
class GoogleUser:
    google_account_id: str
    email: str
    email_verified: bool = False
    name: str | None = None


def _verify_with_google(token: str) -> dict[str, Any]:
    """Google's claims for ``token``.

    A token that is not a JWT at all is refused before Google's keys are fetched, so a bad
    header is the client's 401 even when Google cannot be reached; keys that cannot be fetched
    are a 503 (the server cannot verify), not an internal error.
    """
    if token.count(".") != 2:
        raise HTTPException(401, "invalid token: not a JWT (header.payload.signature)")
    from google.auth.exceptions import TransportError
    from google.auth.transport import requests as google_requests
    from google.oauth2 import id_token

    try:
        claims: dict[str, Any] = id_token.verify_oauth2_token(token, google_requests.Request())
    except TransportError:
        raise HTTPException(503, "Google's signing keys could not be fetched to verify the token") from None
    return claims


def AuthenticatedGoogleUserDepBuilder(
    raise_on_unauthenticated: bool = True,
    session_id_token: str | None = None,
    bearer_credentials_dependency: type[Any] = OptionalBearerCredentials,
    verify_token: Callable[[str], dict[str, Any]] = _verify_with_google,
) -> type:
    """A PROCESS dependency whose ``google_user`` is the verified user (or None).

    ``verify_token`` turns a token into Google's claims; the default asks Google's keys
    (needs the ``google-auth`` package).
    """

    # The dependency graph reads the parameter's annotation: the class asked for at run time;
    # for the type checker, what every credentials class has (a ``token``).
    if TYPE_CHECKING:
        Credentials: TypeAlias = SecurityHeader
    else:
        Credentials = bearer_credentials_dependency

    @dependency(scope=Scope.PROCESS)
    class AuthenticatedGoogleUser:
        def __init__(self, credentials: Credentials, request: Request) -> None:
            token = credentials.token
            if session_id_token is not None:  # needs the service's SessionMiddleware, as in BuildFlow
                token = request.session.get(session_id_token) or token
            self.google_user: GoogleUser | None = None
            if token is None:
                if raise_on_unauthenticated:
                    raise HTTPException(403, "request is not authenticated")
                return
            try:
                claims = verify_token(token)
            except ValueError:  # its text may quote the token: the answer says no more than this
                raise HTTPException(401, "invalid token: Google did not verify it") from None
            if raise_on_unauthenticated and not claims.get("email_verified", False):
                raise HTTPException(403, "email is not verified")
            self.google_user = GoogleUser(
                google_account_id=claims["sub"],
                email=claims.get("email", ""),
                email_verified=bool(claims.get("email_verified", False)),
                name=claims.get("name"),
            )

    return AuthenticatedGoogleUser


__all__ = ["AuthenticatedGoogleUserDepBuilder", "BearerCredentials", "GoogleUser"]
