"""Which files of a project go into its container image, and the tag they hash to.

One ignore list serves three purposes: it chooses the files copied into the build context,
it is written out as the context's ``.dockerignore`` (for anyone who adds files to a written
context before building it), and it keeps state, virtual environments and secrets out of
both. The tag hashes paths and contents in a fixed order, never modification times, so an
unchanged tree means the same tag and no build.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from providers.gcp.errors import GCPTargetError


class ImageBuildError(GCPTargetError):
    """The image's context cannot be made or built; the message says what to do."""


#: ``.dockerignore`` patterns (Docker's syntax: ``**/`` matches in any directory).
IGNORED = (
    # bfctl's own state (stacks, local databases, Pulumi's workspace) and tool caches
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
    # secrets: environment files, keys and Google credentials never enter an image
    "**/.env",
    "**/.env.*",
    "**/*.pem",
    "**/*.key",
    "**/*.p12",
    "**/id_rsa*",
    "**/*credentials*.json",
    "**/service-account*.json",
    "**/*-sa-key*.json",
    # the context's own files, generated anew
    "Dockerfile",
    ".dockerignore",
)


def ignored(relative: PurePosixPath, patterns: Iterable[str] = IGNORED) -> bool:
    """Whether ``relative`` (to the project) or one of its parent directories matches a pattern."""
    parts = relative.parts
    for pattern in patterns:
        anywhere = pattern.startswith("**/")
        body = pattern.removeprefix("**/")
        for end in range(1, len(parts) + 1):
            starts = range(end) if anywhere else (0,)
            if any(fnmatchcase("/".join(parts[start:end]), body) for start in starts):
                return True
    return False


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


def project_files(root: Path, exclude: Iterable[Path] = (), patterns: Iterable[str] = IGNORED) -> dict[str, bytes]:
    """The regular files under ``root`` that no pattern ignores, by POSIX path relative to it.

    ``exclude`` names directories to leave out as well (a context written inside the project).
    Symbolic links are not followed: a link out of the project would leak files into the image.
    """
    patterns = tuple(patterns)
    skipped = {path.resolve() for path in exclude}
    files: dict[str, bytes] = {}
    for directory, subdirs, names in os.walk(root):
        here = Path(directory)
        subdirs[:] = sorted(
            d
            for d in subdirs
            if not ignored(PurePosixPath((here / d).relative_to(root).as_posix()), patterns)
            and (here / d).resolve() not in skipped
            and not (here / d).is_symlink()
        )
        for name in names:
            path = here / name
            relative = PurePosixPath(path.relative_to(root).as_posix())
            if not path.is_symlink() and path.is_file() and not ignored(relative, patterns):
                files[str(relative)] = path.read_bytes()
    return files


def content_hash(files: Mapping[str, bytes]) -> str:
    """SHA-256 over sorted paths and contents (length-prefixed, so no two trees collide by joining)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        data = files[path]
        name = path.encode()
        digest.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()
