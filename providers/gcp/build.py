"""``bfctl build``: write a project's build context, or build (and push) its image with Docker.

The image reference is decided before anything is built: the tag hashes the context, so an
image already tagged with it holds this very code and is not built again.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from buildflow.io.primitive import Primitive
from providers.gcp import docker
from providers.gcp.context import ImageBuildError
from providers.gcp.image import build_context, image_name, image_reference
from providers.gcp.settings import resolve

Say = Callable[[str], None]


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
) -> str:
    """Write the context to ``context_only``, or build the image; returns the image reference.

    ``say`` gets progress lines, ``docker_output`` the lines Docker prints.
    """
    settings = resolve(project_dir, "dev", primitives, project=project, region=region)
    if push and not (settings.project and settings.region):
        settings.require_location()  # raises, naming the ways to set the missing one
    if context_only is None and not docker.daemon_answers():
        raise ImageBuildError(docker.NO_DAEMON)
    exclude = (context_only,) if context_only is not None else ()
    context = build_context(project_dir, target, exclude=exclude, progress=say)
    reference = image_reference(image_name(settings.pulumi_project), context.tag, settings.project, settings.region)
    if context_only is not None:
        context.write(context_only)
        say(f"Wrote the build context of {target} to {context_only}")
        say(f"Image tag: {reference}")
        say(f"Build it with: docker build --tag {reference} {context_only}")
        return reference
    if docker.image_exists(reference):
        say(f"{reference} exists already: unchanged code, no build")
    else:
        say(f"Building {reference} with Docker")
        with tempfile.TemporaryDirectory(prefix="bfctl-context-") as scratch:
            context.write(Path(scratch))
            docker.build(Path(scratch), reference, docker_output)
        say(f"Built {reference}")
    if push:
        say(f"Pushing {reference}")
        docker.push(reference, docker_output)
        say(f"Pushed {reference}")
    return reference
