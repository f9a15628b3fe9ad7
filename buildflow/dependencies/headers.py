"""Dependencies that read credentials from request headers."""

from __future__ import annotations

from buildflow.dependencies.scopes import Scope, dependency
from buildflow.exceptions import HTTPException
from buildflow.requests import Request


def parse_credentials(authorization_header_value: str | None) -> str | None:
    """``"Bearer abc"`` → ``"abc"``; None when the header is absent, empty or not Bearer."""
    if not authorization_header_value:
        return None
    scheme, _, token = authorization_header_value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class SecurityHeader:
    """Base of header-based credentials; ``token`` holds what the client sent."""

    token: str | None


@dependency(scope=Scope.PROCESS)
class OptionalBearerCredentials(SecurityHeader):
    """The bearer token, or None when the request has none (BuildFlow 0.3's behaviour)."""

    def __init__(self, request: Request) -> None:
        self.token = parse_credentials(request.headers.get("Authorization"))


@dependency(scope=Scope.PROCESS)
class BearerCredentials(SecurityHeader):
    """The bearer token; a request without one is answered 401 before the handler runs."""

    def __init__(self, request: Request) -> None:
        token = parse_credentials(request.headers.get("Authorization"))
        if token is None:
            raise HTTPException(
                401, "Missing or malformed bearer token", headers={"WWW-Authenticate": 'Bearer realm="api"'}
            )
        self.token: str | None = token
