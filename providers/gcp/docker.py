"""Building an image with the local Docker daemon, through the ``docker`` program.

The program is the interface (not the daemon's socket API) so that whatever the user's
``docker`` talks to, a remote context, Colima, Podman's shim, is used as it is.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from providers.gcp.context import ImageBuildError

NO_DAEMON = (
    "no Docker daemon answered (`docker info` failed), and building remotely with Cloud Build is not "
    "available in this version of bfctl yet. Start Docker and run this command again, or write the "
    "build context with `bfctl build --context-only DIR` and build it where Docker runs: "
    "`docker build -t IMAGE DIR`, or `gcloud builds submit DIR --tag IMAGE` for Cloud Build."
)


def daemon_answers() -> bool:
    """Whether a ``docker`` program is on PATH and its daemon answers ``docker info``."""
    if shutil.which("docker") is None:
        return False
    return _quiet(["docker", "info"])


def image_exists(reference: str) -> bool:
    """Whether the daemon already holds an image tagged ``reference``."""
    return _quiet(["docker", "image", "inspect", reference])


def build(context_dir: Path, reference: str, output: Callable[[str], None]) -> None:
    """``docker build`` the context, passing each line of Docker's output to ``output``."""
    _stream(["docker", "build", "--tag", reference, str(context_dir)], output, "docker build")


def push(reference: str, output: Callable[[str], None]) -> None:
    """``docker push`` the image (Docker's credential helper for the registry must be set up)."""
    _stream(
        ["docker", "push", reference],
        output,
        "docker push",
        hint=" (for Artifact Registry, run `gcloud auth configure-docker REGION-docker.pkg.dev` once)",
    )


def _quiet(args: list[str]) -> bool:
    return subprocess.run(args, capture_output=True, check=False).returncode == 0


def _stream(args: list[str], output: Callable[[str], None], what: str, hint: str = "") -> None:
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            output(line.rstrip("\n"))
    if process.returncode != 0:
        raise ImageBuildError(f"`{what}` failed (exit {process.returncode}); its output is above{hint}")
