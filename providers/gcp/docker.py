"""Building an image with the local Docker daemon, through the ``docker`` program.

The program is the interface (not the daemon's socket API) so that whatever the user's
``docker`` talks to, a remote context, Colima, Podman's shim, is used as it is.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from providers.gcp.context import ImageBuildError
from providers.gcp.image import PLATFORM

NO_DAEMON = (
    "no Docker daemon answered (`docker info` failed). Without one, bfctl builds the image remotely with "
    "Cloud Build, and a remote build is always pushed to Artifact Registry: run `bfctl build --push` "
    "(with --gcp-project and --gcp-region, or them set in pyproject.toml). Or start Docker and run this "
    "command again, or write the build context with `bfctl build --context-only DIR` and build it where Docker runs."
)
#: ``docker push`` ends with "TAG: digest: sha256:... size: N".
_PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def daemon_answers() -> bool:
    """Whether a ``docker`` program is on PATH and its daemon answers ``docker info``."""
    if shutil.which("docker") is None:
        return False
    return _quiet(["docker", "info"])


def image_exists(reference: str) -> bool:
    """Whether the daemon already holds an image tagged ``reference``."""
    return _quiet(["docker", "image", "inspect", reference])


def build(context_dir: Path, reference: str, output: Callable[[str], None]) -> None:
    """``docker build`` the context for Cloud Run's platform, passing each line of Docker's output to ``output``."""
    _stream(["docker", "build", "--platform", PLATFORM, "--tag", reference, str(context_dir)], output, "docker build")


def push(reference: str, output: Callable[[str], None]) -> str:
    """``docker push`` the image (Docker's credential helper for the registry must be set up); returns its digest."""
    lines = _stream(
        ["docker", "push", reference],
        output,
        "docker push",
        hint=" (for Artifact Registry, run `gcloud auth configure-docker REGION-docker.pkg.dev` once)",
    )
    pushed = [match.group(1) for line in lines if (match := _PUSHED_DIGEST.search(line))]
    return pushed[-1] if pushed else repo_digest(reference)


def repo_digest(reference: str) -> str:
    """The digest the registry gave the pushed ``reference``, as the daemon recorded it (``RepoDigests``)."""
    repository = reference.rpartition(":")[0]
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", reference],  # noqa: S607 - the user's docker
        capture_output=True,
        text=True,
        check=False,
    )
    digests = json.loads(result.stdout or "null") if result.returncode == 0 else None
    for pinned in digests or []:
        name, _, digest = str(pinned).partition("@")
        if name == repository:
            return digest
    raise ImageBuildError(
        f"`docker push` gave no digest of {reference}, and Docker records none; push it again with `bfctl build --push`"
    )


def _quiet(args: list[str]) -> bool:
    return subprocess.run(args, capture_output=True, check=False).returncode == 0


def _stream(args: list[str], output: Callable[[str], None], what: str, hint: str = "") -> list[str]:
    """Run ``args``, passing each line of output to ``output``; returns the lines."""
    lines: list[str] = []
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            output(lines[-1])
    if process.returncode != 0:
        raise ImageBuildError(f"`{what}` failed (exit {process.returncode}); its output is above{hint}")
    return lines
