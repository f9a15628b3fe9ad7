"""``bfctl build``: the generated build context, its content-hash tag, and the Docker path.

The Docker path runs against a stand-in ``docker`` program first on PATH (``fakes/docker.py``);
no Docker daemon is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from fakes.docker import calls
from fakes.docker import install as install_docker
from support import HELLO_FLOW, bfctl_run

import bfctl
from bfctl.providers.gcp import image
from bfctl.providers.gcp.context import ImageBuildError, content_hash, ignored
from bfctl.providers.gcp.image import BuildContext, build_context

PYPROJECT = """\
[project]
name = "Shop_API"
version = "1.0"
dependencies = ["requests>=2", "bfctl>=0.1"]

[tool.buildflow]
app = "main:app"
"""

SECRETS_AND_STATE = (
    ".env",
    "config/.env.production",
    "keys/server.pem",
    "keys/tls.key",
    "deploy/service-account-prod.json",
    "application_default_credentials.json",
    ".buildflow/state/dev.json",
    ".venv/lib/site.py",
    ".git/config",
    "shop/__pycache__/util.cpython-311.pyc",
)


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session: bfctl's wheel is built once, not by every test."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def project(tmp_path: Path, wheel_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(wheel_cache))
    root = tmp_path / "shop"
    files = {"main.py": HELLO_FLOW, "pyproject.toml": PYPROJECT, "shop/__init__.py": "", "shop/util.py": "X = 1\n"}
    write_tree(root, files)
    write_tree(root, dict.fromkeys(SECRETS_AND_STATE, "secret-value-123\n"))
    return root


@pytest.fixture
def env(bfctl_env: dict[str, str], tmp_path: Path, wheel_cache: Path) -> dict[str, str]:
    """A stand-in ``docker`` first on PATH, its log and the images it holds."""
    bin_dir = install_docker(tmp_path / "bin").parent
    return {
        **bfctl_env,
        "PATH": f"{bin_dir}{os.pathsep}{bfctl_env['PATH']}",
        "XDG_CACHE_HOME": str(wheel_cache),
        "FAKE_DOCKER_LOG": str(tmp_path / "docker-calls.jsonl"),
        "FAKE_DOCKER_IMAGES": str(tmp_path / "docker-images.txt"),
        "FAKE_DOCKER_DAEMON": "up",
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),  # the developer's own is not read
    }


def docker_calls(env: dict[str, str]) -> list[list[str]]:
    return calls(Path(env["FAKE_DOCKER_LOG"]))


def build(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return bfctl_run(["build", *args], cwd, env, timeout=300)


def tag_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("Image tag: ")).removeprefix("Image tag: ")


def test_context_holds_the_code_and_no_state_or_secrets(project: Path) -> None:
    context = build_context(project, "main:app")

    assert {name for name in context.files if name.startswith("app/")} == {
        "app/main.py",
        "app/pyproject.toml",
        "app/shop/__init__.py",
        "app/shop/util.py",
    }
    assert not any(b"secret-value-123" in data for data in context.files.values())
    dockerignore = context.files[".dockerignore"].decode().splitlines()
    assert {"**/.buildflow", "**/.venv", "**/.git", "**/__pycache__", "**/.env", "**/*.pem", "**/*.key"} <= set(
        dockerignore
    )
    assert all(ignored(PurePosixPath(name)) for name in SECRETS_AND_STATE)


def test_dockerfile_installs_dependencies_before_the_code_and_runs_as_a_user(project: Path) -> None:
    dockerfile = build_context(project, "main:app").files["Dockerfile"].decode()
    lines = dockerfile.splitlines()

    assert f"FROM python:{sys.version_info.major}.{sys.version_info.minor}-slim" in lines
    install = lines.index("RUN pip install --requirement /opt/bfctl-deps/requirements.txt && rm -rf /opt/bfctl-deps")
    assert lines.index("COPY bfctl-deps/ /opt/bfctl-deps/") < install < lines.index("COPY app/ /app/")
    assert any(line.startswith("RUN useradd") for line in lines)
    assert lines.index("USER flow") > install
    entrypoint = json.loads(next(line for line in lines if line.startswith("ENTRYPOINT ")).removeprefix("ENTRYPOINT "))
    assert entrypoint == ["python", "-P", "-m", "bfctl.container", "main:app"]


def test_the_image_gets_the_running_bfctl_and_the_projects_dependencies(project: Path) -> None:
    context = build_context(project, "main:app")
    requirements = context.files["bfctl-deps/requirements.txt"].decode().splitlines()

    # this checkout is a development install: a wheel of it travels in the context
    wheels = [name for name in context.files if name.startswith("bfctl-deps/") and name.endswith(".whl")]
    assert len(wheels) == 1
    assert f"/opt/{wheels[0]}" in requirements
    wheel_path = project.parent / "bfctl.whl"
    wheel_path.write_bytes(context.files[wheels[0]])
    with zipfile.ZipFile(wheel_path) as wheel:
        metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        assert f"Version: {bfctl.__version__}" in wheel.read(metadata).decode().splitlines()
        assert "bfctl/runtime/server.py" in wheel.namelist()
        assert not any(name.startswith(("runtime/", "providers/")) for name in wheel.namelist())
    assert "requests>=2" in requirements
    assert "bfctl>=0.1" not in requirements  # the running version wins over the project's range
    assert not any(line.startswith("pulumi") for line in requirements)


def test_requirements_txt_is_used_when_present(project: Path) -> None:
    (project / "requirements.txt").write_text("httpx==0.27.0\nBFCTL==0.3.0\n")

    requirements = build_context(project, "main:app").files["bfctl-deps/requirements.txt"].decode().splitlines()

    assert "httpx==0.27.0" in requirements
    assert "requests>=2" not in requirements
    assert "BFCTL==0.3.0" not in requirements


def test_tag_is_stable_for_the_same_tree_and_changes_with_the_code(project: Path) -> None:
    first = build_context(project, "main:app").tag
    os.utime(project / "main.py", (0, 0))  # a touched file is not a changed file
    (project / ".buildflow" / "state" / "dev.json").write_text("{}")  # ignored files do not count
    assert build_context(project, "main:app").tag == first

    (project / "shop" / "util.py").write_text("X = 2\n")
    changed = build_context(project, "main:app").tag
    assert changed != first
    (project / "shop" / "util.py").write_text("X = 1\n")
    assert build_context(project, "main:app").tag == first


def test_the_tag_hashes_the_platform_so_an_image_of_another_platform_is_not_reused(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    amd64 = build_context(project, "main:app")
    # the tag an image built from the same files without a platform (possibly arm64) was given
    assert amd64.tag != content_hash(amd64.files)[:20]

    monkeypatch.setattr(image, "PLATFORM", "linux/arm64")
    arm64 = build_context(project, "main:app")
    assert arm64.files == amd64.files
    assert arm64.tag != amd64.tag


def test_write_refuses_a_directory_holding_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")

    with pytest.raises(ImageBuildError, match="not empty"):
        BuildContext({"Dockerfile": b"FROM scratch\n"}, "t").write(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_context_only_writes_the_context_and_prints_the_tag(project: Path, env: dict[str, str]) -> None:
    first = build(project, env, "--context-only", "ctx")

    assert first.returncode == 0, first.stderr
    assert "Wrote the build context of main:app to ctx" in first.stdout
    tag = tag_line(first.stdout)
    assert tag.startswith("shop_api:")  # no project or region: a local tag
    assert f"Build it with: docker build --platform linux/amd64 --tag {tag} ctx" in first.stdout
    assert (project / "ctx" / "Dockerfile").is_file()
    assert (project / "ctx" / "app" / "main.py").read_text() == HELLO_FLOW
    assert not (project / "ctx" / "app" / ".env").exists()
    assert docker_calls(env) == []  # writing a context needs no Docker

    # written again over the earlier context, which is not part of the new one
    again = build(project, env, "--context-only", "ctx")
    assert again.returncode == 0, again.stderr
    assert tag_line(again.stdout) == tag
    assert not (project / "ctx" / "app" / "ctx").exists()


def test_without_a_daemon_a_remote_build_needs_push(project: Path, env: dict[str, str]) -> None:
    result = build(project, {**env, "FAKE_DOCKER_DAEMON": "down"})

    assert result.returncode == 1
    assert "a remote build is always pushed" in result.stderr
    assert "bfctl build --push" in result.stderr
    assert "bfctl build --context-only DIR" in result.stderr
    assert "Traceback" not in result.stderr
    assert docker_calls(env) == [["info"]]


def test_docker_builds_once_for_unchanged_code(project: Path, env: dict[str, str]) -> None:
    with (project / "pyproject.toml").open("a") as f:
        f.write(textwrap.dedent('[tool.buildflow.gcp]\nproject = "acme-prod"\nregion = "europe-west1"\n'))

    first = build(project, env)
    assert first.returncode == 0, first.stderr
    builds = [call for call in docker_calls(env) if call[0] == "build"]
    assert len(builds) == 1
    reference = builds[0][builds[0].index("--tag") + 1]
    assert reference.startswith("europe-west1-docker.pkg.dev/acme-prod/bfctl-shop-api-dev/shop_api:")
    assert f"Built {reference}" in first.stdout
    assert f"#2 FROM python:{sys.version_info.major}.{sys.version_info.minor}-slim" in first.stdout

    second = build(project, env)
    assert second.returncode == 0, second.stderr
    assert f"{reference} exists already: unchanged code, no build" in second.stdout
    assert [call for call in docker_calls(env) if call[0] == "build"] == builds
    assert ["image", "inspect", reference] in docker_calls(env)

    (project / "main.py").write_text(HELLO_FLOW + "\n# changed\n")
    third = build(project, env)
    assert third.returncode == 0, third.stderr
    rebuilt = [call for call in docker_calls(env) if call[0] == "build"]
    assert len(rebuilt) == 2
    assert rebuilt[1][rebuilt[1].index("--tag") + 1] != reference


def test_flags_choose_the_registry_and_push_sends_the_image(project: Path, env: dict[str, str]) -> None:
    # as after `gcloud auth configure-docker us-central1-docker.pkg.dev`: Docker asks gcloud
    config = Path(env["DOCKER_CONFIG"])
    config.mkdir()
    (config / "config.json").write_text('{"credHelpers": {"us-central1-docker.pkg.dev": "gcloud"}}')

    result = build(project, env, "--gcp-project", "acme-dev", "--gcp-region", "us-central1", "--push")

    assert result.returncode == 0, result.stderr
    calls = docker_calls(env)
    built = next(call for call in calls if call[0] == "build")
    reference = built[built.index("--tag") + 1]
    assert reference.startswith("us-central1-docker.pkg.dev/acme-dev/bfctl-shop-api-dev/shop_api:")
    # Cloud Run runs amd64 images only: an arm64 machine (Apple silicon) must not build its own kind
    assert built[built.index("--platform") + 1] == "linux/amd64"
    assert calls[-1] == ["push", reference]
    assert f"Pushed {reference}" in result.stdout


def test_push_needs_a_registry_location(project: Path, env: dict[str, str]) -> None:
    result = build(project, env, "--push")

    assert result.returncode == 1
    assert "no Google Cloud project" in result.stderr
    assert docker_calls(env) == []


def test_the_projects_dockerignore_leaves_out_more_never_less(project: Path) -> None:
    write_tree(project, {".dockerignore": "# big files\n/data/\n**/*.csv\n", "data/big.bin": "x", "shop/r.csv": "a"})

    context = build_context(project, "main:app")

    assert not any(name.startswith("app/data/") or name.endswith(".csv") for name in context.files)
    assert "app/shop/util.py" in context.files
    assert {"app/data", "**/*.csv", "**/.env"} <= set(context.files[".dockerignore"].decode().splitlines())

    (project / ".dockerignore").write_text("!keys/server.pem\n")
    with pytest.raises(ImageBuildError, match="exceptions"):
        build_context(project, "main:app")


def test_a_flow_file_target_is_relative_to_the_project_in_the_image(project: Path, tmp_path: Path) -> None:
    dockerfile = build_context(project, f"{project / 'main.py'}:app").files["Dockerfile"].decode()
    assert 'ENTRYPOINT ["python", "-P", "-m", "bfctl.container", "main.py:app"]' in dockerfile

    (tmp_path / "elsewhere.py").write_text(HELLO_FLOW)
    with pytest.raises(ImageBuildError, match="outside the project directory"):
        build_context(project, "../elsewhere.py:app")
