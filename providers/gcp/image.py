"""The container image of a project: its build context (a readable Dockerfile, the project's
files, its dependencies) and the tag that context hashes to.

The image runs the bfctl the user runs: the same version from the package index, or, for a
checkout installed in development mode (no index has that code), a wheel built from it and
shipped inside the context. Dependencies are installed in a layer before the code is copied,
so a code change rebuilds one small layer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, distribution
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import unquote, urlparse

from bfctl.providers.gcp.context import IGNORED, ImageBuildError, content_hash, project_files, project_patterns

#: Where dependency files sit in the context, and in the image while they are installed.
DEPS_DIR = "bfctl-deps"
#: Where the project's files sit in the context; they are copied to ``/app`` in the image.
APP_DIR = "app"
#: Cloud Run runs only amd64 images: a build on an arm64 machine (Apple silicon) must not make its own kind.
PLATFORM = "linux/amd64"
#: Wheel timestamps are fixed so that the same bfctl source gives the same wheel, hence the same tag.
_SOURCE_DATE_EPOCH = "315532800"
_HEADER = "# Written by `bfctl build`; it is generated anew on every build, so change the project, not this file."
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class BuildContext:
    """Every file of a build context by its path in the context, the tag they hash to, and the
    project's files left out, with why (``bfctl.providers.gcp.context``)."""

    files: dict[str, bytes]
    tag: str
    left_out: dict[str, str] = dataclasses.field(default_factory=dict)

    def left_out_lines(self) -> list[str]:
        """What ``bfctl build --verbose`` says about the files left out."""
        if not self.left_out:
            return ["Left out of the context: nothing"]
        width = max(map(len, self.left_out))
        return ["Left out of the context:"] + [f"  {p:<{width}}  {why}" for p, why in sorted(self.left_out.items())]

    def write(self, destination: Path) -> None:
        """Write the context into ``destination``: a new or empty directory, or one holding an
        earlier context (replaced, so that no file of the old code stays behind)."""
        if destination.exists() and any(destination.iterdir()):
            if not _is_context(destination):
                raise ImageBuildError(
                    f"{destination} is not empty and holds no earlier build context; "
                    "give --context-only an empty or new directory"
                )
            shutil.rmtree(destination)
        for name, data in self.files.items():
            path = destination / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def _is_context(directory: Path) -> bool:
    try:
        return (directory / "Dockerfile").read_text().startswith(_HEADER)
    except (OSError, UnicodeDecodeError):
        return False


def base_image() -> str:
    """The slim official Python image of the running interpreter's minor version."""
    return f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"


def image_name(name: str) -> str:
    """A Docker repository name made from a project name (lowercase, ``[a-z0-9._-]``)."""
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._") or "flow"


def image_reference(image: str, tag: str, project: str | None, region: str | None, repository: str) -> str:
    """``REGION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE:TAG`` when the location is known, else a local tag."""
    if project and region:
        return f"{region}-docker.pkg.dev/{project}/{repository}/{image}:{tag}"
    return f"{image}:{tag}"


def build_context(
    project_dir: Path, target: str, *, exclude: tuple[Path, ...] = (), progress: Progress = lambda _: None
) -> BuildContext:
    """The context that serves ``target`` from ``project_dir``; ``exclude`` leaves directories out.

    The project's own ``.dockerignore``, ``.gitignore`` files and ``.gcloudignore`` leave out
    more files, never fewer.
    """
    bfctl_line, deps_files = _bfctl_requirement(progress)
    requirements = "\n".join(
        [
            "# bfctl, the version that built this context",
            bfctl_line,
            "# the clients bfctl's runtime uses on Google Cloud (Pulumi only runs where you deploy from)",
            *_runtime_requirements(),
            f"# the project's dependencies, from its {_dependency_source(project_dir) or 'declarations (none)'}",
            *_project_requirements(project_dir),
            "",
        ]
    )
    own = project_patterns(project_dir)
    in_context = [p if p.startswith("**/") else f"{APP_DIR}/{p}" for p in own]
    code = project_files(project_dir, exclude, IGNORED + own, git_rules=True)
    files = {
        "Dockerfile": dockerfile(_target_in_image(project_dir, target)).encode(),
        ".dockerignore": ("\n".join([*IGNORED, *in_context]) + "\n").encode(),
        f"{DEPS_DIR}/requirements.txt": requirements.encode(),
        **{f"{DEPS_DIR}/{name}": data for name, data in deps_files.items()},
        **{f"{APP_DIR}/{name}": data for name, data in code.files.items()},
    }
    return BuildContext(files, tag_of(files), code.left_out)


def tag_of(files: dict[str, bytes]) -> str:
    """The hash of the files and the platform: an image built for another platform never has this tag."""
    return hashlib.sha256(f"{PLATFORM}\n{content_hash(files)}".encode()).hexdigest()[:20]


def dockerfile(target: str) -> str:
    """The Dockerfile: dependencies in their own layer before the code, run by a user without privileges."""
    # bfctl.container serves as `bfctl serve TARGET --host 0.0.0.0` would, without the CLI's
    # parsing: a new instance answers sooner. The port comes from $PORT.
    entrypoint = json.dumps(["python", "-P", "-m", "bfctl.container", target])
    return f"""\
{_HEADER}
FROM {base_image()}

ENV PYTHONUNBUFFERED=1 \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    PORT=8080

# The flow runs as a user without privileges; the code it runs belongs to root, read-only to it.
RUN useradd --create-home --uid 10001 flow

# Dependencies before the code: this layer is rebuilt only when they change, not on a code change.
COPY {DEPS_DIR}/ /opt/{DEPS_DIR}/
RUN pip install --requirement /opt/{DEPS_DIR}/requirements.txt && rm -rf /opt/{DEPS_DIR}

WORKDIR /app
COPY {APP_DIR}/ /app/

USER flow
EXPOSE 8080
ENTRYPOINT {entrypoint}
"""


def _target_in_image(project_dir: Path, target: str) -> str:
    """``target`` as the image sees it: a flow file's path relative to the project (``/app``)."""
    location, _, attr = target.rpartition(":")
    if not location.endswith(".py"):
        return target
    try:
        inside = (project_dir / location).resolve().relative_to(project_dir.resolve())
    except ValueError:
        raise ImageBuildError(
            f"the flow file {location} is outside the project directory {project_dir}, so the image would not "
            "hold it; run `bfctl build` from a directory that contains it"
        ) from None
    return f"{inside.as_posix()}:{attr}"


def _dependency_source(project_dir: Path) -> str | None:
    if (project_dir / "requirements.txt").is_file():
        return "requirements.txt"
    if (project_dir / "pyproject.toml").is_file():
        return "pyproject.toml"
    return None


def _project_requirements(project_dir: Path) -> list[str]:
    """The project's requirements, except bfctl itself (the image gets the version that built it)."""
    source = _dependency_source(project_dir)
    if source == "requirements.txt":
        lines = (project_dir / source).read_text().splitlines()
    elif source == "pyproject.toml":
        try:
            with open(project_dir / source, "rb") as f:
                lines = list(tomllib.load(f).get("project", {}).get("dependencies", []))
        except tomllib.TOMLDecodeError as exc:
            raise ImageBuildError(f"{project_dir / source} is not valid TOML: {exc}") from None
    else:
        lines = []
    return [line for line in lines if not _names_bfctl(line)]


def _names_bfctl(requirement: str) -> bool:
    match = _NAME.match(requirement)
    return match is not None and match.group(1).lower().replace("_", "-") == "bfctl"


def _runtime_requirements() -> list[str]:
    """The ``gcp`` extra of the installed bfctl without Pulumi's packages."""
    requires = distribution("bfctl").requires or []
    return [
        requirement.split(";")[0].strip()
        for requirement in requires
        if re.search(r"""extra\s*==\s*["']gcp["']""", requirement) and not requirement.startswith("pulumi")
    ]


def _bfctl_requirement(progress: Progress) -> tuple[str, dict[str, bytes]]:
    """The requirement line that installs the running bfctl, and the files it needs in the context."""
    spec = find_spec("bfctl")
    assert spec is not None and spec.origin is not None
    checkout = Path(spec.origin).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        wheel = _wheel_of(checkout, progress)
        return f"/opt/{DEPS_DIR}/{wheel.name}", {wheel.name: wheel.read_bytes()}
    try:
        dist = distribution("bfctl")
    except PackageNotFoundError:
        raise ImageBuildError("bfctl is not installed as a package; install it with pip and try again") from None
    origin = dist.read_text("direct_url.json")
    if origin is None:
        return f"bfctl=={dist.version}", {}
    url = json.loads(origin).get("url", "")
    local = Path(unquote(urlparse(url).path))
    if url.startswith("file://") and local.suffix == ".whl" and local.is_file():
        return f"/opt/{DEPS_DIR}/{local.name}", {local.name: local.read_bytes()}
    raise ImageBuildError(
        f"bfctl was installed from {url}, which an image cannot install again; install bfctl from PyPI, "
        "a local wheel or a checkout, then build"
    )


def _wheel_of(checkout: Path, progress: Progress) -> Path:
    """A wheel of the bfctl checkout, cached by the hash of its files (building one takes seconds).

    Only its top-level files and packages are copied to build from: tests and examples are not
    in the wheel, and their changes should not make a new one.
    """
    files = {
        name: data
        for name, data in project_files(checkout).files.items()
        if "/" not in name or (checkout / name.split("/")[0] / "__init__.py").is_file()
    }
    cache = _cache_dir() / "wheels" / content_hash(files)[:20]
    built = sorted(cache.glob("bfctl-*.whl"))
    if built:
        return built[0]
    progress(f"Building a wheel of bfctl from {checkout} (installed in development mode, so no index has it)")
    with tempfile.TemporaryDirectory(prefix="bfctl-wheel-") as scratch:
        source = Path(scratch) / "source"
        for name, data in files.items():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes(data)
        for link in (checkout / "bfctl").iterdir():  # bfctl.runtime and bfctl.providers: their folders
            if link.is_symlink():
                (source / "bfctl" / link.name).symlink_to(os.readlink(link))
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", scratch, str(source)],
            capture_output=True,
            text=True,
            env={**os.environ, "SOURCE_DATE_EPOCH": _SOURCE_DATE_EPOCH},
            check=False,
        )
        wheels = sorted(Path(scratch).glob("bfctl-*.whl"))
        if result.returncode != 0 or not wheels:
            raise ImageBuildError(f"building a wheel of bfctl from {checkout} failed:\n{result.stderr.strip()}")
        cache.mkdir(parents=True, exist_ok=True)
        partial = cache / f".{wheels[0].name}.{os.getpid()}"
        shutil.copy2(wheels[0], partial)
        return partial.replace(cache / wheels[0].name)  # atomic: a concurrent build never reads half a wheel


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bfctl"
