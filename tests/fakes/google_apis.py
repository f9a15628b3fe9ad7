"""Stand-ins of the Google APIs ``bfctl doctor`` asks, one small aiohttp app each, on loopback.

OAuth's token endpoint, Cloud Resource Manager (v3 ``projects.get``; v1 ``testIamPermissions``
and ``getIamPolicy``), Cloud Billing (``billingInfo``), Service Usage (``services:batchGet``),
Organization Policy (v2 ``getEffectivePolicy``) and IAM (a service account's
``testIamPermissions``) answer from one ``GoogleProject`` as Google answers: the same paths and
bodies, Google's error objects, an API the project has not enabled refused with 403
``SERVICE_DISABLED``, fields proto3 leaves out when false or empty left out, and a request
without the token the token endpoint gave refused with 401.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from support import on_loopback

ACCESS_TOKEN = "ya29.doctor-stand-in-token"
#: Each stand-in's API, as ``CLOUDSDK_API_ENDPOINT_OVERRIDES_<API>`` names it.
APIS = ("cloudresourcemanager", "cloudbilling", "serviceusage", "orgpolicy", "iam")
_TITLES = {
    "cloudresourcemanager": "Cloud Resource Manager API",
    "cloudbilling": "Cloud Billing API",
    "serviceusage": "Service Usage API",
    "orgpolicy": "Organization Policy API",
    "iam": "Identity and Access Management (IAM) API",
}
Handler = Callable[[web.Request], Any]


@dataclasses.dataclass
class GoogleProject:
    """What Google knows of the project, and what the stand-ins were asked."""

    project: str = "acme-prod"
    number: str = "412233445566"
    exists: bool = True
    state: str = "ACTIVE"
    billing: bool = True
    #: APIs enabled in the project (``services:batchGet`` answers from it).
    enabled: set[str] = dataclasses.field(default_factory=set)
    #: The stand-ins' own APIs the project has not enabled: each refuses with SERVICE_DISABLED.
    refusing: set[str] = dataclasses.field(default_factory=set)
    #: Permissions the caller holds on the project; None: every one asked.
    held: set[str] | None = None
    #: Effective policy rules by constraint (none: the constraint is not set anywhere).
    policies: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    policies_readable: bool = True
    #: Service accounts of the project, with the permissions the caller holds on each.
    accounts: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    #: The project's IAM policy bindings; None: the caller may not read the policy.
    bindings: list[dict[str, Any]] | None = dataclasses.field(default_factory=list)
    #: (API, method, path) of each request an API was asked.
    asked: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    #: The permissions each testIamPermissions on the project asked about.
    tested: list[list[str]] = dataclasses.field(default_factory=list)
    tokens: int = 0


def _error(status: int, code: str, message: str, *details: dict[str, Any]) -> web.Response:
    error: dict[str, Any] = {"code": status, "message": message, "status": code}
    if details:
        error["details"] = list(details)
    return web.json_response({"error": error}, status=status)


def _denied(permission: str, resource: str) -> web.Response:
    """Google's 403 for a missing permission, or a resource the caller cannot see."""
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "IAM_PERMISSION_DENIED",
        "domain": "iam.googleapis.com",
        "metadata": {"permission": permission, "resource": resource},
    }
    return _error(
        403,
        "PERMISSION_DENIED",
        f"Permission '{permission}' denied on resource '{resource}' (or it may not exist).",
        info,
    )


def _guarded(api: str, google: GoogleProject, handler: Handler) -> Handler:
    """``handler`` behind the token check and the API's own enablement, as Google's front end does."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        google.asked.append((api, request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
            return _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        if api in google.refusing:
            service = f"{api}.googleapis.com"
            info = {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "SERVICE_DISABLED",
                "domain": "googleapis.com",
                "metadata": {"service": service, "consumer": f"projects/{google.number}"},
            }
            message = (
                f"{_TITLES[api]} has not been used in project {google.number} before or it is disabled. Enable it by "
                f"visiting https://console.developers.google.com/apis/api/{service}/overview?project={google.number} "
                "then retry."
            )
            return _error(403, "PERMISSION_DENIED", message, info)
        result: web.StreamResponse = await handler(request)
        return result

    return guarded


def _ours(google: GoogleProject, request: web.Request) -> bool:
    return google.exists and request.match_info["project"] in (google.project, google.number)


def _resource_manager(google: GoogleProject) -> web.Application:
    async def get(request: web.Request) -> web.Response:
        resource = f"//cloudresourcemanager.googleapis.com/projects/{request.match_info['project']}"
        if not _ours(google, request):
            return _denied("resourcemanager.projects.get", resource)
        return web.json_response(
            {
                "name": f"projects/{google.number}",
                "parent": "organizations/998877",
                "projectId": google.project,
                "state": google.state,
                "displayName": f"{google.project} (stand-in)",
            }
        )

    async def test_permissions(request: web.Request) -> web.Response:
        if not _ours(google, request):
            return _denied("resourcemanager.projects.get", request.match_info["project"])
        asked = (await request.json()).get("permissions", [])
        google.tested.append(asked)
        held = [p for p in asked if google.held is None or p in google.held]
        return web.json_response({"permissions": held} if held else {})

    async def get_policy(request: web.Request) -> web.Response:
        if not _ours(google, request) or google.bindings is None:
            return _denied("resourcemanager.projects.getIamPolicy", request.match_info["project"])
        return web.json_response({"version": 1, "etag": "BwYz1Q==", "bindings": google.bindings})

    app = web.Application()
    app.router.add_get("/v3/projects/{project}", _guarded("cloudresourcemanager", google, get))
    app.router.add_post(
        "/v1/projects/{project:[^/:]+}:testIamPermissions", _guarded("cloudresourcemanager", google, test_permissions)
    )
    app.router.add_post(
        "/v1/projects/{project:[^/:]+}:getIamPolicy", _guarded("cloudresourcemanager", google, get_policy)
    )
    return app


def _billing(google: GoogleProject) -> web.Application:
    async def info(request: web.Request) -> web.Response:
        if not _ours(google, request):
            return _denied("resourcemanager.projects.get", f"projects/{request.match_info['project']}")
        body: dict[str, Any] = {"name": f"projects/{google.project}/billingInfo", "projectId": google.project}
        if google.billing:  # proto3 JSON leaves out false and empty fields
            body |= {"billingAccountName": "billingAccounts/01A2B3-C4D5E6-F7A8B9", "billingEnabled": True}
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/v1/projects/{project}/billingInfo", _guarded("cloudbilling", google, info))
    return app


def _service_usage(google: GoogleProject) -> web.Application:
    async def batch_get(request: web.Request) -> web.Response:
        if not _ours(google, request):
            return _denied("serviceusage.services.get", f"projects/{request.match_info['project']}")
        names = request.query.getall("names", [])
        if not names or len(names) > 30:
            return _error(400, "INVALID_ARGUMENT", "Between 1 and 30 services must be requested.")
        services = []
        for name in names:
            api = name.rpartition("/")[2]
            services.append(
                {
                    "name": f"projects/{google.number}/services/{api}",
                    "config": {"name": api, "title": api},
                    "state": "ENABLED" if api in google.enabled else "DISABLED",
                    "parent": f"projects/{google.number}",
                }
            )
        return web.json_response({"services": services})

    app = web.Application()
    app.router.add_get("/v1/projects/{project}/services:batchGet", _guarded("serviceusage", google, batch_get))
    return app


def _org_policy(google: GoogleProject) -> web.Application:
    async def effective(request: web.Request) -> web.Response:
        constraint = request.match_info["constraint"]
        if not _ours(google, request) or not google.policies_readable:
            return _denied("orgpolicy.policy.get", f"projects/{request.match_info['project']}")
        rules = google.policies.get(constraint)
        spec: dict[str, Any] = {"rules": rules} if rules else {}
        return web.json_response({"name": f"projects/{google.number}/policies/{constraint}", "spec": spec})

    app = web.Application()
    app.router.add_get(
        "/v2/projects/{project}/policies/{constraint:[^/:]+}:getEffectivePolicy",
        _guarded("orgpolicy", google, effective),
    )
    return app


def _iam(google: GoogleProject) -> web.Application:
    async def test_permissions(request: web.Request) -> web.Response:
        email = request.match_info["email"]
        if email not in google.accounts:
            return _error(404, "NOT_FOUND", f"Unknown service account {email}")
        asked = (await request.json()).get("permissions", [])
        held = [p for p in asked if p in google.accounts[email]]
        return web.json_response({"permissions": held} if held else {})

    app = web.Application()
    app.router.add_post(
        "/v1/projects/-/serviceAccounts/{email:[^/:]+}:testIamPermissions", _guarded("iam", google, test_permissions)
    )
    return app


def _oauth(google: GoogleProject) -> web.Application:
    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not form.get("assertion"):
            return web.json_response({"error": "invalid_grant", "error_description": "Bad Request"}, status=400)
        google.tokens += 1
        return web.json_response({"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"})

    app = web.Application()
    app.router.add_post("/token", token)
    return app


@dataclasses.dataclass(frozen=True)
class Served:
    """Where the stand-ins listen: the environment that points bfctl at them, and the token endpoint."""

    env: dict[str, str]
    token_uri: str


@contextmanager
def serve(google: GoogleProject) -> Iterator[Served]:
    """Each stand-in on a loopback port of its own, served from a thread for as long as the block runs."""
    apps = {
        "cloudresourcemanager": _resource_manager(google),
        "cloudbilling": _billing(google),
        "serviceusage": _service_usage(google),
        "orgpolicy": _org_policy(google),
        "iam": _iam(google),
        "oauth": _oauth(google),
    }
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="google-stand-ins", daemon=True)
    thread.start()

    async def start() -> list[tuple[web.AppRunner, str]]:
        return [await on_loopback(app) for app in apps.values()]

    started = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    urls = dict(zip(apps, (url for _, url in started), strict=True))
    try:
        env = {f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api.upper()}": f"{urls[api]}/" for api in APIS}
        yield Served(env, f"{urls['oauth']}/token")
    finally:

        async def stop() -> None:
            for runner, _ in started:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def key_file(path: Path, token_uri: str, email: str = "deployer@acme-prod.iam.gserviceaccount.com") -> Path:
    """A service account's key file whose tokens come from ``token_uri`` (google-auth honours a
    service account key's ``token_uri``, so no request leaves this machine)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": email.partition("@")[2].split(".")[0],
                "private_key_id": "doctor-key",
                "private_key": pem.decode(),
                "client_email": email,
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    return path
