"""Building an image remotely with Cloud Build, for machines where no Docker daemon answers.

As ``gcloud builds submit`` does: the build context goes to a bucket as a tarball, one ``docker
build`` step builds it, and Cloud Build pushes the image to Artifact Registry, so a remote build
is always pushed. Its digest comes from the build's results. The bucket and the account the build
runs as are the stack's (``bfctl.providers.gcp.build_identity``): new projects would run it as the
Compute Engine default account, which may neither read the source, nor write logs, nor push.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import re
import tarfile
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from bfctl.providers.gcp.context import ImageBuildError
from bfctl.providers.gcp.deploy import account_email, build_account_id, named_build_account, sources_bucket
from bfctl.providers.gcp.errors import GCPSettingsError
from bfctl.providers.gcp.image import PLATFORM, BuildContext
from bfctl.providers.gcp.registry import JSON, GoogleAPIs

BUILDER = "gcr.io/cloud-builders/docker"
#: The regions where Google lets every project build: projects with little use are limited to these
#: (https://cloud.google.com/build/docs/locations, "Restricted regions for some projects").
OPEN_REGIONS = ("us-central1", "us-west2", "europe-west1", "asia-east1", "australia-southeast1", "southamerica-east1")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
#: What Cloud Build answers (400 FAILED_PRECONDITION) where it will not build for the project.
_REFUSED_REGION = "cannot run builds in this region"
#: What Cloud Build answers (400) while the build's account, or its grant on the source, made
#: moments ago, has not reached Cloud Build yet: IAM changes take a minute or more to propagate.
_NOT_YET = re.compile(r"does not have storage\.objects\.get access|invalid service account", re.IGNORECASE)
#: Tries of a build while IAM propagates, and the seconds between two (Google: up to 7 minutes).
PROPAGATION_TRIES = 42
PROPAGATION_WAIT = 10.0
#: Seconds between two looks at a running build.
POLL_INTERVAL = 2.0
#: How long Cloud Build lets the build run; installing dependencies can take minutes.
BUILD_TIMEOUT = "1200s"
_RUNNING = frozenset({"STATUS_UNKNOWN", "PENDING", "QUEUED", "WORKING"})
_WHY = {
    "FAILURE": "a step failed; its log says which (a dependency that does not install, an error in the Dockerfile)",
    "TIMEOUT": f"it ran longer than {BUILD_TIMEOUT}",
    "CANCELLED": "it was cancelled; run this command again to build anew",
    "EXPIRED": "it waited in Cloud Build's queue too long; run this command again",
    "INTERNAL_ERROR": "Cloud Build failed on its side; run this command again",
}

Say = Callable[[str], None]


def build(
    api: GoogleAPIs,
    context: BuildContext,
    reference: str,
    *,
    project: str,
    region: str,
    remote: Remote,
    say: Say,
    poll_interval: float = POLL_INTERVAL,
) -> str:
    """Build and push ``reference`` from ``context`` with Cloud Build as ``remote`` says; returns the
    image's digest. The image goes to ``reference``'s registry, whatever region builds it."""
    build_region = remote.region
    assert remote.sources is not None, "a publish names the stack, whose bucket holds the sources"
    source = upload_source(api, context, bucket=remote.sources, say=say)
    builds = f"{api.endpoints.cloudbuild}v1/projects/{project}/locations/{build_region}/builds"
    request = build_request(source, reference, remote.service_account)
    try:
        operation = _start(api, builds, request, say)
    except ImageBuildError as exc:
        if _REFUSED_REGION not in str(exc):
            raise
        raise ImageBuildError(
            f"Cloud Build refuses to build in {build_region} for the project {project} ({exc}). Build in a region "
            f"every project may use: set build_region in [tool.buildflow.gcp] of pyproject.toml to one of "
            f"{', '.join(OPEN_REGIONS)} (the image still goes to the registry in {region})"
        ) from None
    started: JSON = operation["metadata"]["build"]
    say(f"Cloud Build build {started['id']} started; its log: {started.get('logUrl', '(no log URL given)')}")
    ended = _wait(api, f"{builds}/{started['id']}", started, say, poll_interval)
    return _digest(ended, reference)


def _start(api: GoogleAPIs, builds: str, request: JSON, say: Say) -> JSON:
    """Create the build; while Cloud Build does not yet see the account or its grant on the source
    (both made by the apply that now builds), try again, saying why."""
    account = str(request.get("serviceAccount", "")).rpartition("/")[2]
    attempt = 1
    while True:
        try:
            operation = api.call("POST", builds, "starting the Cloud Build build", body=request)
        except ImageBuildError as exc:
            if not account or not _NOT_YET.search(str(exc)):
                raise
            if attempt >= PROPAGATION_TRIES:
                raise ImageBuildError(
                    f"{exc}. Cloud Build still cannot act as {account} after "
                    f"{attempt * PROPAGATION_WAIT / 60:.0f} minutes: it needs roles/storage.objectViewer on the "
                    "sources bucket, which `bfctl apply --target gcp` grants; apply again"
                ) from None
            if attempt == 1:
                say(
                    f"Cloud Build cannot act as {account} yet (IAM changes take minutes to reach it): "
                    f"trying again every {PROPAGATION_WAIT:g}s"
                )
            attempt += 1
            time.sleep(PROPAGATION_WAIT)
            continue
        assert operation is not None
        return operation


@dataclasses.dataclass(frozen=True)
class Remote:
    """Where Cloud Build builds, as whom (``projects/P/serviceAccounts/EMAIL``; None: Cloud Build's
    default), and the bucket its sources go to (None: no stack named)."""

    region: str
    service_account: str | None = None
    sources: str | None = None


def remote(table: dict[str, Any], region: str, project: str, service: str | None = None) -> Remote:
    """``build_region`` and ``build_service_account`` of ``[tool.buildflow.gcp]``; with the stack's
    ``service``, the account and bucket the stack makes for builds. The region is by default the
    stack's where every project may build, else us-central1 (a new project's first build elsewhere
    may be refused)."""
    chosen = table.get("build_region")
    if chosen is not None and (not isinstance(chosen, str) or not _REGION.match(chosen)):
        raise GCPSettingsError(
            f'build_region in [tool.buildflow.gcp] must be a Google Cloud region such as "us-central1", not {chosen!r}'
        )
    account = named_build_account(table, project)
    if account is None and service is not None:
        account = account_email(build_account_id(service), project)
    default_region = region if region in OPEN_REGIONS else OPEN_REGIONS[0]
    return Remote(
        chosen or default_region,
        f"projects/{project}/serviceAccounts/{account}" if account else None,
        sources_bucket(project, service) if service is not None else None,
    )


def build_request(source: JSON, reference: str, service_account: str | None = None) -> JSON:
    """The Build resource: one docker build step over the uploaded context, the image pushed by Cloud Build.

    A build run as a chosen service account must say where its logs go (Cloud Build refuses it
    otherwise); Cloud Logging needs no bucket the account could not write to.
    """
    request: JSON = {
        "source": {"storageSource": source},
        "steps": [{"name": BUILDER, "args": ["build", "--platform", PLATFORM, "--tag", reference, "."]}],
        "images": [reference],
        "timeout": BUILD_TIMEOUT,
    }
    if service_account is not None:
        request["serviceAccount"] = service_account
        request["options"] = {"logging": "CLOUD_LOGGING_ONLY"}
    return request


def tarball(files: Mapping[str, bytes]) -> bytes:
    """The files as a gzipped tar with fixed times and owners, so the same context gives the same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(files[name]), 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def upload_source(api: GoogleAPIs, context: BuildContext, *, bucket: str, say: Say) -> JSON:
    """Upload the context to ``gs://{bucket}/source/{tag}.tgz``; returns its StorageSource."""
    name = f"source/{context.tag}.tgz"
    what = f"looking up the bucket gs://{bucket}"
    if api.call("GET", f"{api.endpoints.storage}storage/v1/b/{bucket}", what, missing_ok=True) is None:
        raise ImageBuildError(
            f"gs://{bucket}, where the stack keeps Cloud Build's sources, does not exist yet: `bfctl apply --target "
            "gcp` makes it, with the account builds run as (for a stack deployed before, `bfctl apply --target gcp "
            "--no-deploy` makes them without a build), then build again"
        )
    data = tarball(context.files)
    say(
        f"Uploading the build context ({len(context.files)} files, {len(data) // 1024 + 1} KiB) to gs://{bucket}/{name}"
    )
    url = f"{api.endpoints.storage}upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(name, safe='')}"
    uploaded = api.call(
        "POST", url, f"uploading the build context to gs://{bucket}", data=data, content_type="application/gzip"
    )
    assert uploaded is not None
    return {"bucket": bucket, "object": name, "generation": uploaded["generation"]}


def _wait(api: GoogleAPIs, url: str, build: JSON, say: Say, poll_interval: float) -> JSON:
    """Look at the build every ``poll_interval`` seconds until it ends, saying each change of status."""
    shown = None
    while True:
        status = build.get("status", "STATUS_UNKNOWN")
        if status != shown:
            say(f"Cloud Build: {status}")
            shown = status
        if status not in _RUNNING:
            return build
        time.sleep(poll_interval)
        found = api.call("GET", url, "following the Cloud Build build")
        assert found is not None
        build = found


def _digest(build: JSON, reference: str) -> str:
    """The pushed image's digest from a build that ended, or the error saying why there is none."""
    status, log = build.get("status"), build.get("logUrl", "(no log URL given)")
    if status != "SUCCESS":
        detail = f" ({build['statusDetail']})" if build.get("statusDetail") else ""
        why = _WHY.get(str(status), "see its log")
        raise ImageBuildError(f"the Cloud Build build {build.get('id')} ended {status}{detail}: {why}. Its log: {log}")
    for image in build.get("results", {}).get("images", []):
        if image.get("name") == reference and image.get("digest"):
            return str(image["digest"])
    raise ImageBuildError(
        f"the Cloud Build build {build.get('id')} succeeded but reported no digest of {reference}; see {log}"
    )
