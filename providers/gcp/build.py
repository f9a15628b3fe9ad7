"""Publishing a project's image: ``bfctl build`` and the image ``bfctl apply --target gcp`` deploys.

The image reference is decided before anything is built: the tag hashes the context, so an
image already tagged with it holds this very code and is not built again. Docker builds when its
daemon answers; otherwise Cloud Build does, and pushes what it builds.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bfctl.providers.gcp import cloudbuild, docker
from bfctl.providers.gcp.context import ImageBuildError
from bfctl.providers.gcp.deploy import repository_id, service_name
from bfctl.providers.gcp.image import PLATFORM, BuildContext, build_context, image_name, image_reference
from bfctl.providers.gcp.registry import GoogleAPIs, tag_digest
from bfctl.providers.gcp.settings import resolve
from buildflow.io.primitive import Primitive

Say = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Published:
    """An image in Artifact Registry, by tag and by digest."""

    reference: str  # REGION-docker.pkg.dev/PROJECT/bfctl/IMAGE:TAG
    digest: str  # "sha256:..."
    built: bool  # False when the registry already had this tag

    @property
    def pinned(self) -> str:
        """The reference by digest, which a deployment runs whatever the tag later points to."""
        return f"{self.reference.rpartition(':')[0]}@{self.digest}"


@dataclasses.dataclass(frozen=True)
class _Image:
    """What to publish and where: the context, and the registry location its reference names."""

    context: BuildContext
    project: str
    region: str
    name: str
    repository: str

    @property
    def reference(self) -> str:
        return image_reference(self.name, self.context.tag, self.project, self.region, self.repository)


def publish_image(
    project_dir: Path,
    target: str,
    primitives: Sequence[Primitive],
    *,
    project: str | None,
    region: str | None,
    say: Say,
    output: Say,
    stack: str = "dev",
    poll_interval: float = cloudbuild.POLL_INTERVAL,
) -> Published:
    """Make sure Artifact Registry holds the image of the project's current code, building it only if not.

    ``say`` gets progress lines, ``output`` the lines Docker prints; ``poll_interval`` is the
    seconds between two looks at a Cloud Build build; the image goes to ``stack``'s repository.
    """
    settings = resolve(project_dir, stack, primitives, project=project, region=region)
    location = settings.require_location()
    local = docker.daemon_answers()
    context = build_context(project_dir, target, progress=say)
    service = service_name(settings.pulumi_project, stack, settings.table)
    image = _Image(context, *location, image_name(settings.pulumi_project), repository_id(service))
    remote = cloudbuild.remote(settings.table, image.region, image.project, service)
    return _publish(image, local=local, remote=remote, say=say, output=output, poll_interval=poll_interval)


def build_image(
    project_dir: Path,
    target: str,
    primitives: Sequence[Primitive],
    *,
    context_only: Path | None,
    push: bool,
    project: str | None,
    region: str | None,
    say: Say,
    docker_output: Say,
    verbose: bool = False,
) -> str:
    """Write the context to ``context_only``, or build the image; returns the image reference.

    ``say`` gets progress lines (with ``verbose``, the files left out of the context too),
    ``docker_output`` the lines Docker prints.
    """
    settings = resolve(project_dir, "dev", primitives, project=project, region=region)
    if push:
        settings.require_location()  # raises, naming the ways to set the missing one
    local = context_only is None and docker.daemon_answers()
    if context_only is None and not local and not push:
        raise ImageBuildError(docker.NO_DAEMON)
    exclude = (context_only,) if context_only is not None else ()
    context = build_context(project_dir, target, exclude=exclude, progress=say)
    for line in context.left_out_lines() if verbose else ():
        say(line)
    service = service_name(settings.pulumi_project, "dev", settings.table)
    repository = repository_id(service)
    reference = image_reference(
        image_name(settings.pulumi_project), context.tag, settings.project, settings.region, repository
    )
    if context_only is not None:
        context.write(context_only)
        say(f"Wrote the build context of {target} to {context_only}")
        say(f"Image tag: {reference}")
        say(f"Build it with: docker build --platform {PLATFORM} --tag {reference} {context_only}")
        return reference
    if not local:
        assert settings.project and settings.region  # push is set, and the location was required above
        image = _Image(context, settings.project, settings.region, image_name(settings.pulumi_project), repository)
        remote = cloudbuild.remote(settings.table, settings.region, settings.project, service)
        return _publish(image, local=False, remote=remote, say=say, output=docker_output).reference
    token_source = _token_source(reference) if push else None
    _build_locally(context, reference, say, docker_output)
    if push:
        _push_locally(reference, say, docker_output, token_source)
    return reference


def _publish(
    image: _Image,
    *,
    local: bool,
    remote: cloudbuild.Remote,
    say: Say,
    output: Say,
    poll_interval: float = cloudbuild.POLL_INTERVAL,
) -> Published:
    """Ask the registry for the tag; build and push the image only when it is not there (with Cloud
    Build as ``remote`` says when no Docker daemon answers)."""
    api = GoogleAPIs.connect()
    reference = image.reference
    found = tag_digest(api, image.project, image.region, image.repository, image.name, image.context.tag)
    if found is not None:
        say(f"{reference} is in Artifact Registry already: unchanged code, no build")
        return Published(reference, found, built=False)
    if local:
        token_source = _token_source(reference, api)
        _build_locally(image.context, reference, say, output)
        digest = _push_locally(reference, say, output, token_source)
    else:
        say(f"No Docker daemon answered: building {reference} with Cloud Build in {image.project} ({remote.region})")
        digest = cloudbuild.build(
            api,
            image.context,
            reference,
            project=image.project,
            region=image.region,
            remote=remote,
            say=say,
            poll_interval=poll_interval,
        )
        say(f"Built and pushed {reference}")
    say(f"Image digest: {digest}")
    return Published(reference, digest, built=True)


def _build_locally(context: BuildContext, reference: str, say: Say, output: Say) -> None:
    """``docker build`` the context, unless the daemon holds an image of that tag already."""
    if docker.image_exists(reference):
        say(f"{reference} exists already: unchanged code, no build")
        return
    say(f"Building {reference} with Docker")
    with tempfile.TemporaryDirectory(prefix="bfctl-context-") as scratch:
        context.write(Path(scratch))
        docker.build(Path(scratch), reference, output)
    say(f"Built {reference}")


def _push_locally(reference: str, say: Say, output: Say, token_source: GoogleAPIs | None) -> str:
    """``docker push`` with Docker's credentials for the registry, or, given a ``token_source``, as the
    deployer with their Google access token for this push only: the user's Docker config is not changed."""
    say(f"Pushing {reference}")
    if token_source is None:
        digest = docker.push(reference, output)
    else:
        host = docker.registry_host(reference)
        say(f"Docker has no credentials for {host}: pushing with your Google access token, for this push only")
        with docker.token_login(host, token_source.access_token()) as env:
            digest = docker.push(reference, output, env)
    say(f"Pushed {reference}")
    return digest


def _token_source(reference: str, api: GoogleAPIs | None = None) -> GoogleAPIs | None:
    """None when Docker has credentials for the registry of ``reference`` (a credential helper or a
    login); else the Google credentials to push with, found before anything is built."""
    host = docker.registry_host(reference)
    if docker.has_credentials(host):
        return None
    if api is not None:
        return api
    try:
        return GoogleAPIs.connect()
    except ImageBuildError:
        raise ImageBuildError(
            f"Docker has no credentials for {host}, and no Google credentials were found to push with. Run "
            f"`gcloud auth configure-docker {host}` (Docker then asks gcloud for them), or "
            "`gcloud auth application-default login`, then run this command again."
        ) from None
