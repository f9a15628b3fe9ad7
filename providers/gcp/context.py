"""Which files of a project go into its container image, and the tag they hash to.

One ignore list serves three purposes: it chooses the files copied into the build context,
it is written out as the context's ``.dockerignore`` (for anyone who adds files to a written
context before building it), and it keeps state, virtual environments and credentials out of
both. The credentials are a built-in deny-list that no project file can bring back. On top of
it a project leaves out more with its ``.dockerignore``, its ``.gitignore`` files and its
``.gcloudignore`` (as Cloud Build's uploads do); those two are read by git itself, so their
patterns mean what they mean to git, exceptions (``!pattern``) included. The tag hashes paths
and contents in a fixed order, never modification times, so an unchanged tree means the same
tag and no build.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from bfctl.providers.gcp.errors import GCPTargetError


class ImageBuildError(GCPTargetError):
    """The image's context cannot be made or built; the message says what to do."""


# ``.dockerignore`` patterns (Docker's syntax: ``**/`` matches in any directory).
#: bfctl's own state (stacks, local databases, Pulumi's workspace) and tool caches.
STATE_AND_CACHES = (
    "**/.buildflow",
    "**/.git",
    "**/.venv",
    "**/venv",
    "**/__pycache__",
    "**/*.py[cod]",
    "**/.pytest_cache",
    "**/.mypy_cache",
    "**/.ruff_cache",
    "**/*.egg-info",
)
#: Credentials, keys and the files that hold them: never in an image, whatever the project says.
CREDENTIALS = (
    "**/.env",
    "**/.env.*",
    "**/.envrc",
    "**/*.pem",
    "**/*.key",
    "**/*.p12",
    "**/*.pfx",
    "**/id_rsa*",
    "**/id_dsa*",
    "**/id_ecdsa*",
    "**/id_ed25519*",
    "**/.ssh",
    "**/.aws",
    "**/.netrc",
    "**/_netrc",
    "**/.git-credentials",
    "**/.npmrc",
    "**/.pypirc",
    "**/*.tfstate",
    "**/*.tfstate.*",
    "**/.docker/config.json",
    "**/.kube",
    "**/.config/gcloud",
    "**/.pulumi",
    "**/*credentials*.json",
    "**/service-account*.json",
    "**/*-sa-key*.json",
)
#: The context's own files, generated anew.
GENERATED = ("Dockerfile", ".dockerignore")
IGNORED = STATE_AND_CACHES + CREDENTIALS + GENERATED
#: Why a file matching a built-in pattern is left out; other patterns are the project's ``.dockerignore``.
_WHY = {
    **dict.fromkeys(STATE_AND_CACHES, "state or cache"),
    **dict.fromkeys(CREDENTIALS, "credentials, always left out"),
    **dict.fromkeys(GENERATED, "generated anew"),
}
_GIT_RULES = ".gitignore or .gcloudignore"


@dataclasses.dataclass
class ProjectFiles:
    """The files that go into a context, by POSIX path relative to the project, and what was
    left out and why (a folder left out whole is one entry, ending in ``/``)."""

    files: dict[str, bytes]
    left_out: dict[str, str]


def ignored(relative: PurePosixPath, patterns: Iterable[str] = IGNORED) -> str | None:
    """The pattern ``relative`` (to the project) or one of its parent directories matches, if any."""
    parts = relative.parts
    for pattern in patterns:
        anywhere = pattern.startswith("**/")
        body = pattern.removeprefix("**/")
        for end in range(1, len(parts) + 1):
            starts = range(end) if anywhere else (0,)
            if any(fnmatchcase("/".join(parts[start:end]), body) for start in starts):
                return pattern
    return None


def project_patterns(root: Path) -> tuple[str, ...]:
    """The patterns of the project's own ``.dockerignore``, if it has one.

    Exceptions (``!pattern``) are refused rather than half-honoured: they could only bring back
    files the list above keeps out, secrets among them.
    """
    try:
        lines = (root / ".dockerignore").read_text().splitlines()
    except FileNotFoundError:
        return ()
    patterns = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if any(pattern.startswith("!") for pattern in patterns):
        raise ImageBuildError(f"{root / '.dockerignore'}: exceptions (lines starting with !) are not supported")
    return tuple(pattern.removeprefix("./").strip("/") for pattern in patterns)


def project_files(
    root: Path, exclude: Iterable[Path] = (), patterns: Iterable[str] = IGNORED, *, git_rules: bool = False
) -> ProjectFiles:
    """The regular files under ``root`` that no pattern ignores (nor, with ``git_rules``, its
    ``.gitignore`` files and ``.gcloudignore``).

    ``exclude`` names directories to leave out as well (a context written inside the project).
    Symbolic links are not followed: a link out of the project would leak files into the image.
    """
    patterns = tuple(patterns)
    skipped = {path.resolve() for path in exclude}
    git = shutil.which("git") if git_rules else None
    git_ignored = _git_ignored(git, root) if git else frozenset()
    found = ProjectFiles({}, {})

    def left_out(relative: str, folder: bool) -> bool:
        listed = relative + "/" if folder else relative
        pattern = ignored(PurePosixPath(relative), patterns)
        why = _WHY.get(pattern, ".dockerignore") if pattern else _GIT_RULES if listed in git_ignored else None
        if why:
            found.left_out[listed] = why
        return why is not None

    for directory, subdirs, names in os.walk(root):
        here = Path(directory)
        subdirs[:] = sorted(
            d
            for d in subdirs
            if (here / d).resolve() not in skipped
            and not (here / d).is_symlink()
            and not left_out((here / d).relative_to(root).as_posix(), folder=True)
        )
        for name in names:
            path = here / name
            relative = path.relative_to(root).as_posix()
            if not path.is_symlink() and path.is_file() and not left_out(relative, folder=False):
                found.files[relative] = path.read_bytes()
    if git_rules and git is None:
        rules = sorted(name for name in found.files if PurePosixPath(name).name in (".gitignore", ".gcloudignore"))
        if rules:
            raise ImageBuildError(
                f"the project has {rules[0]}, and bfctl reads it with git, which is not installed: install git "
                "so that what it ignores stays out of the image"
            )
    return found


def _git_ignored(git: str, root: Path) -> frozenset[str]:
    """The paths under ``root`` its ``.gitignore`` files and ``.gcloudignore`` ignore, as git
    lists them (a folder ignored whole ends in ``/``).

    git reads them against an empty repository of its own whose work tree is ``root``, so they
    mean the same whether or not the project is a checkout, and whatever is committed; the
    user's global excludes and an enclosing repository's rules are not read.
    """
    gcloudignore = root / ".gcloudignore"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    with tempfile.TemporaryDirectory(prefix="bfctl-git-") as scratch:
        run = [git, "--git-dir", scratch, "--work-tree", str(root)]
        subprocess.run([git, "init", "--quiet", "--bare", scratch], env=env, capture_output=True, check=True)
        excludes = str(gcloudignore) if gcloudignore.is_file() else os.devnull
        listing = [*run, "-c", f"core.excludesFile={excludes}", "ls-files", "-z", "--others", "--ignored"]
        result = subprocess.run(
            [*listing, "--exclude-standard", "--directory"], cwd=root, env=env, capture_output=True, check=False
        )
    if result.returncode != 0:
        raise ImageBuildError(f"git could not read the ignore files of {root}: {result.stderr.decode().strip()}")
    return frozenset(os.fsdecode(path) for path in result.stdout.split(b"\0") if path)


def content_hash(files: Mapping[str, bytes]) -> str:
    """SHA-256 over sorted paths and contents (length-prefixed, so no two trees collide by joining)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        data = files[path]
        name = path.encode()
        digest.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()
