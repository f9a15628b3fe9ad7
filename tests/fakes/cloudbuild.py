"""A stand-in for the Google APIs a publish calls: OAuth's token endpoint, Cloud Build's builds and
Artifact Registry's tags, over real HTTP on loopback (served from a thread by ``serve``).

A build reads its source from the Cloud Storage emulator the way Cloud Build reads the bucket,
stays ``WORKING`` for ``polls_to_finish`` looks, then ends with ``outcome``; a build that
succeeds puts its image in the registry, so the next publish finds the tag. A build in one of
``refused_regions`` is refused as Google refuses builds in regions a new project may not use, and
one run as a chosen service account that does not say where its logs go is refused (400) as Google does.
With ``new_project`` it answers as a project made today: a build that names no service account runs
as the Compute Engine default account, which may not read the source, so it is refused (400); and
the first ``unpropagated`` builds as a named account are refused the same way, as while the
account's grants made moments ago have not reached Cloud Build.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import io
import json
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ACCESS_TOKEN = "ya29.stand-in-token-0123456789"
PROJECT_NUMBER = "123456789012"
#: Cloud Storage's answer to a bucket made without uniform access where the organization enforces it.
UNIFORM_REFUSAL = (
    "Request violates constraint 'constraints/storage.uniformBucketLevelAccess' on the resource; "
    "uniform bucket-level access must be enabled"
)
BUILDS = re.compile(r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/builds(?:/(?P<id>[^/?]+))?$")
TAGS = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/repositories/(?P<repository>[^/]+)"
    r"/packages/(?P<package>[^/]+)/tags/(?P<tag>[^/]+)$"
)


def digest_of(reference: str) -> str:
    """The digest the stand-in's builds give ``reference``."""
    return "sha256:" + hashlib.sha256(b"cloud-build:" + reference.encode()).hexdigest()


@dataclasses.dataclass
class GoogleStandIn:
    """What the stand-in was asked, and how its builds end."""

    storage: str  # the Cloud Storage emulator's URL, where build sources are read
    url: str = ""
    polls_to_finish: int = 3
    outcome: str = "SUCCESS"
    status_detail: str = ""
    #: registry contents: "REGION-docker.pkg.dev/P/REPO/IMAGE:TAG" -> digest
    images: dict[str, str] = dataclasses.field(default_factory=dict)
    #: the Build resources asked for, and the source tarball each read
    requests: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    sources: list[bytes] = dataclasses.field(default_factory=list)
    #: the claims of each JWT the token endpoint was given
    token_claims: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    unauthorized: int = 0
    #: regions where builds are refused, as Google refuses them for projects with little use
    refused_regions: set[str] = dataclasses.field(default_factory=set)
    #: the region each build asked for ran in
    regions: list[str] = dataclasses.field(default_factory=list)
    #: a project made today: its default build identity cannot read sources
    new_project: bool = False
    #: builds as a named account refused before its grants are in effect
    unpropagated: int = 0
    #: the builds refused for their account's access to the source
    denied: int = 0
    _builds: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    _polls: dict[str, int] = dataclasses.field(default_factory=dict)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        if path == "/token" and method == "POST":
            return self._token(body)
        if headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
            self.unauthorized += 1
            return 401, {"error": {"code": 401, "message": "Request had invalid authentication credentials."}}
        if (match := TAGS.match(path)) and method == "GET":
            return self._tag(match)
        if (match := BUILDS.match(path.split("?")[0])) and method == "POST" and not match["id"]:
            return self._create(match, json.loads(body))
        if match and method == "GET" and match["id"]:
            return self._get(match["id"])
        return 404, {"error": {"code": 404, "message": f"no {method} {path} here"}}

    def _token(self, body: bytes) -> tuple[int, dict[str, Any]]:
        form = urllib.parse.parse_qs(body.decode())
        payload = form["assertion"][0].split(".")[1]
        self.token_claims.append(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
        return 200, {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}

    def _tag(self, match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        image = f"{match['repository']}/{urllib.parse.unquote(match['package'])}:{match['tag']}"
        reference = f"{match['region']}-docker.pkg.dev/{match['project']}/{image}"
        if reference not in self.images:
            return 404, {"error": {"code": 404, "message": f"Requested entity was not found: {reference}"}}
        name = match.string.removeprefix("/v1/")
        return 200, {"name": name, "version": f"{name.split('/tags/')[0]}/versions/{self.images[reference]}"}

    def _create(self, match: re.Match[str], build: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if match["region"] in self.refused_regions:
            message = (
                "failed precondition: due to quota restrictions, Cloud Build cannot run builds in this region. "
                "Please contact support"
            )
            return 400, {"error": {"code": 400, "message": message, "status": "FAILED_PRECONDITION"}}
        if "serviceAccount" in build and not _logs_placed(build):
            message = (
                "generic::invalid_argument: if 'build.service_account' is specified, the build must either (a) "
                "specify 'build.logs_bucket', (b) use the REGIONAL_USER_OWNED_BUCKET "
                "build.options.default_logs_bucket_behavior option, or (c) use either CLOUD_LOGGING_ONLY / NONE "
                "logging options"
            )
            return 400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
        account = str(build.get("serviceAccount", "")).rpartition("/")[2]
        if (not account and self.new_project) or (account and self.denied < self.unpropagated):
            self.denied += 1
            email = account or f"{PROJECT_NUMBER}-compute@developer.gserviceaccount.com"
            message = (
                f"could not resolve source: googleapi: Error 403: {email} does not have storage.objects.get access "
                "to the Google Cloud Storage object. Permission 'storage.objects.get' denied on resource (or it may "
                "not exist)., forbidden"
            )
            return 400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
        source = build["source"]["storageSource"]
        name = urllib.parse.quote(source["object"], safe="")
        with urllib.request.urlopen(f"{self.storage}/storage/v1/b/{source['bucket']}/o/{name}?alt=media") as response:
            tarball = response.read()
        with self._lock:
            self.requests.append(build)
            self.regions.append(match["region"])
            self.sources.append(tarball)
            build_id = f"build-{len(self.requests)}"
            self._builds[build_id] = {
                **build,
                "id": build_id,
                "projectId": match["project"],
                "status": "QUEUED",
                "logUrl": f"https://console.cloud.google.com/cloud-build/builds;region={match['region']}/{build_id}",
            }
            self._polls[build_id] = 0
            if self.polls_to_finish == 0:  # ended before it is first looked at (a cached build)
                self._builds[build_id]["status"] = self._end(self._builds[build_id])
        operation = f"projects/{match['project']}/locations/{match['region']}/operations/op-{build_id}"
        metadata = {"@type": "type.googleapis.com/google.devtools.cloudbuild.v1.BuildOperationMetadata"}
        return 200, {"name": operation, "metadata": {**metadata, "build": self._builds[build_id]}}

    def _get(self, build_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            build = self._builds[build_id]
            self._polls[build_id] += 1
            if build["status"] in ("QUEUED", "WORKING"):
                build["status"] = "WORKING" if self._polls[build_id] < self.polls_to_finish else self._end(build)
            return 200, build

    def _end(self, build: dict[str, Any]) -> str:
        """End ``build`` with the outcome; a success puts its images in the registry."""
        if self.status_detail:
            build["statusDetail"] = self.status_detail
        if self.outcome == "SUCCESS":
            images = [{"name": reference, "digest": digest_of(reference)} for reference in build["images"]]
            build["results"] = {"images": images}
            self.images.update({image["name"]: image["digest"] for image in images})
        return self.outcome


def _logs_placed(build: dict[str, Any]) -> bool:
    """Whether a build says where its logs go, as Cloud Build requires of one run as a chosen account."""
    options = build.get("options", {})
    return bool(
        build.get("logsBucket")
        or options.get("logging") in ("CLOUD_LOGGING_ONLY", "NONE")
        or options.get("defaultLogsBucketBehavior") == "REGIONAL_USER_OWNED_BUCKET"
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, answer = self.server.stand_in.handle(self.command, self.path, self.headers, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: the tests read what the stand-in recorded, not its access log."""


class _Server(ThreadingHTTPServer):
    stand_in: GoogleStandIn


@contextmanager
def serve(stand_in: GoogleStandIn) -> Iterator[GoogleStandIn]:
    """Serve ``stand_in`` on a loopback port; its ``url`` is set once the socket listens."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.stand_in = stand_in
    with _serving(httpd) as url:
        stand_in.url = url
        yield stand_in


@contextmanager
def storage_emulator(data_dir: Path, secure_by_default: bool = False) -> Iterator[str]:
    """gcp-storage-emulator's request handler over in-memory storage; yields its URL. With
    ``secure_by_default`` it refuses buckets as an organization made since May 2024 does: with 412
    unless made with uniform bucket-level access."""
    from gcp_storage_emulator.server import RequestHandler
    from gcp_storage_emulator.storage import Storage

    class SecureByDefault(RequestHandler):  # type: ignore[misc]  # the emulator has no type hints
        def do_POST(self) -> None:
            if not secure_by_default or urllib.parse.urlsplit(self.path).path.rstrip("/") != "/storage/v1/b":
                return super().do_POST()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            uniform = json.loads(body or b"{}").get("iamConfiguration", {}).get("uniformBucketLevelAccess", {})
            if uniform.get("enabled") is not True:
                refusal = json.dumps({"error": {"code": 412, "message": UNIFORM_REFUSAL}}).encode()
                self.send_response(412)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(refusal)))
                self.end_headers()
                self.wfile.write(refusal)
                return None
            self.rfile = io.BytesIO(body)
            return super().do_POST()

    storage = Storage(use_memory_fs=True, data_dir=str(data_dir))
    with _serving(HTTPServer(("127.0.0.1", 0), functools.partial(SecureByDefault, storage))) as url:
        yield url


@contextmanager
def _serving(httpd: HTTPServer) -> Iterator[str]:
    """Serve from a thread. The socket listens once the server is made, before its URL is handed
    out: connections queue until ``serve_forever`` takes them, so there is nothing to wait for."""
    thread = threading.Thread(target=httpd.serve_forever, name="stand-in", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()  # returns once serve_forever has stopped
        httpd.server_close()
        thread.join()
