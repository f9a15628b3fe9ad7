"""Building an image with the local Docker daemon, through the ``docker`` program.

The program is the interface (not the daemon's socket API) so that whatever the user's
``docker`` talks to, a remote context, Colima, Podman's shim, is used as it is.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bfctl.providers.gcp.context import ImageBuildError
from bfctl.providers.gcp.image import PLATFORM

NO_DAEMON = (
    "no Docker daemon answered (`docker info` failed). Without one, bfctl builds the image remotely with "
    "Cloud Build, and a remote build is always pushed to Artifact Registry: run `bfctl build --push` "
    "(with --gcp-project and --gcp-region, or them set in pyproject.toml). Or start Docker and run this "
    "command again, or write the build context with `bfctl build --context-only DIR` and build it where Docker runs."
)
#: ``docker push`` ends with "TAG: digest: sha256:... size: N".
_PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")
#: What a registry answers a push without (valid) credentials: "denied: Unauthenticated request...",
#: "unauthorized: ...", "denied: Permission ... denied".
_REFUSED = re.compile(r"\b(denied|unauthorized|unauthenticated)\b", re.IGNORECASE)
#: The user name Artifact Registry takes with an OAuth access token as the password.
TOKEN_USER = "oauth2accesstoken"  # noqa: S105 - a user name Google fixes, no secret


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
    code, _ = _run(["docker", "build", "--platform", PLATFORM, "--tag", reference, str(context_dir)], output)
    if code != 0:
        raise ImageBuildError(f"`docker build` failed (exit {code}); its output is above")


def registry_host(reference: str) -> str:
    """The registry an image reference names (``europe-west1-docker.pkg.dev``)."""
    return reference.split("/", 1)[0]


def has_credentials(host: str) -> bool:
    """Whether the user's Docker config has credentials for ``host``: a credential helper for it
    (what ``gcloud auth configure-docker HOST`` sets) or a login (``docker login``; when a
    credential store keeps the secret, Docker leaves an empty entry under ``auths``)."""
    config = _user_config()
    helpers, logins = config.get("credHelpers"), config.get("auths")
    return (isinstance(helpers, dict) and host in helpers) or (
        isinstance(logins, dict) and any(_host_of(key) == host for key in logins)
    )


@contextmanager
def token_login(host: str, token: str) -> Iterator[dict[str, str]]:
    """The environment of a ``docker`` run logged in to ``host`` as ``oauth2accesstoken`` with
    ``token``, for as long as the block runs; its config directory is deleted afterwards.

    The login is written to a private config file as ``docker login`` writes one, rather than
    by ``docker login`` itself: given a config without credentials, Docker would keep the token in
    the system's credential store (the keychain), beyond this push. The user's other settings
    (current context, proxies) are kept and their contexts linked, so Docker reaches its usual daemon.
    """
    own = _config_dir()
    settings = {k: v for k, v in _user_config().items() if k not in ("auths", "credsStore", "credHelpers")}
    secret = base64.b64encode(f"{TOKEN_USER}:{token}".encode()).decode()
    settings["auths"] = {host: {"auth": secret}}
    with tempfile.TemporaryDirectory(prefix="bfctl-docker-") as scratch:  # readable by its owner only
        directory = Path(scratch)
        descriptor = os.open(directory / "config.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as config:
            json.dump(settings, config)
        if (own / "contexts").is_dir():
            (directory / "contexts").symlink_to(own / "contexts", target_is_directory=True)
        yield {**os.environ, "DOCKER_CONFIG": str(directory)}


def push(reference: str, output: Callable[[str], None], env: Mapping[str, str] | None = None) -> str:
    """``docker push`` the image with Docker's credentials for its registry (or those ``env``'s
    config holds); returns its digest."""
    code, lines = _run(["docker", "push", reference], output, env)
    if code != 0:
        host = registry_host(reference)
        hint = (
            f"; {host} refused the credentials Docker sent: your account needs roles/artifactregistry.writer on "
            f"the repository, and Docker's credentials for {host} must be current (`gcloud auth configure-docker "
            f"{host}` makes Docker ask gcloud for them)"
            if any(_REFUSED.search(line) for line in lines)
            else ""
        )
        raise ImageBuildError(f"`docker push` failed (exit {code}); its output is above{hint}")
    pushed = [match.group(1) for line in lines if (match := _PUSHED_DIGEST.search(line))]
    return pushed[-1] if pushed else repo_digest(reference, env)


def repo_digest(reference: str, env: Mapping[str, str] | None = None) -> str:
    """The digest the registry gave the pushed ``reference``, as the daemon recorded it (``RepoDigests``)."""
    repository = reference.rpartition(":")[0]
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", reference],  # noqa: S607 - the user's docker
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    digests = json.loads(result.stdout or "null") if result.returncode == 0 else None
    for pinned in digests or []:
        name, _, digest = str(pinned).partition("@")
        if name == repository:
            return digest
    raise ImageBuildError(
        f"`docker push` gave no digest of {reference}, and Docker records none; push it again with `bfctl build --push`"
    )


def _config_dir() -> Path:
    """Docker's config directory, as the ``docker`` program finds it."""
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def _user_config() -> dict[str, Any]:
    try:
        config = json.loads((_config_dir() / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _host_of(key: str) -> str:
    """The host of an ``auths`` key, which ``docker login`` writes as a host or a URL."""
    return key.split("://", 1)[-1].split("/", 1)[0]


def _quiet(args: list[str]) -> bool:
    return subprocess.run(args, capture_output=True, check=False).returncode == 0


def _run(args: list[str], output: Callable[[str], None], env: Mapping[str, str] | None = None) -> tuple[int, list[str]]:
    """Run ``args``, passing each line of output to ``output``; its exit code and lines."""
    lines: list[str] = []
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            output(lines[-1])
    return process.returncode, lines
