"""``bfctl build``: credentials and ignored files stay out of the build context, and
``--verbose`` lists what was left out. Run through the real CLI, writing the context only."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import bfctl_run

FLOW = """\
from buildflow import Flow

app = Flow()
service = app.service()


@service.endpoint("/hello", method="GET")
def hello() -> str:
    return "hello"
"""
PYPROJECT = '[project]\nname = "shop"\nversion = "1.0"\ndependencies = []\n\n[tool.buildflow]\napp = "main:app"\n'
SECRET = "secret-value-8472"

#: Each planted credential file, and the entry that lists it (its folder when left out whole).
CREDENTIALS = {
    ".ssh/id_ed25519": ".ssh/",
    "id_ecdsa": "id_ecdsa",
    "deploy/id_ed25519.pub": "deploy/id_ed25519.pub",
    ".aws/credentials": ".aws/",
    ".netrc": ".netrc",
    ".git-credentials": ".git-credentials",
    ".npmrc": ".npmrc",
    ".pypirc": ".pypirc",
    ".envrc": ".envrc",
    "terraform.tfstate": "terraform.tfstate",
    "infra/terraform.tfstate.backup": "infra/terraform.tfstate.backup",
    "certs/server.key": "certs/server.key",
    "certs/client.p12": "certs/client.p12",
    ".docker/config.json": ".docker/config.json",
    ".kube/config": ".kube/",
    "gcloud/application_default_credentials.json": "gcloud/application_default_credentials.json",
    ".pulumi/credentials.json": ".pulumi/",
    ".config/gcloud/credentials.db": ".config/gcloud/",
}
#: Files the project's ignore files leave out, and the entry that lists each.
PROJECT_IGNORED = {
    "debug.log": ("debug.log", ".gitignore or .gcloudignore"),
    "sub/trace.log": ("sub/trace.log", ".gitignore or .gcloudignore"),
    "private/token.txt": ("private/", ".gitignore or .gcloudignore"),
    "local-only.txt": ("local-only.txt", ".gitignore or .gcloudignore"),
    "exports/big.csv": ("exports/", ".gitignore or .gcloudignore"),
    "notes.md": ("notes.md", ".dockerignore"),
}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_credentials_and_ignored_files_stay_out_and_verbose_lists_them(
    tmp_path: Path, bfctl_env: dict[str, str], wheel_cache: Path
) -> None:
    project = tmp_path / "shop"
    write(project / "main.py", FLOW)
    write(project / "pyproject.toml", PYPROJECT)
    write(project / ".gitignore", "*.log\n!keep.log\nprivate/\n/local-only.txt\n")
    write(project / ".gcloudignore", "#!include:.gitignore\nexports/\n")
    write(project / ".dockerignore", "notes.md\n")
    for name in [*CREDENTIALS, *PROJECT_IGNORED]:
        write(project / name, SECRET + "\n")
    for name in ("keep.log", "sub/local-only.txt", "shop/keys.py"):  # kept: an exception, an anchored pattern
        write(project / name, "kept\n")

    env = {**bfctl_env, "XDG_CACHE_HOME": str(wheel_cache)}
    result = bfctl_run(["build", "--context-only", "ctx", "--verbose"], project, env, timeout=300)

    assert result.returncode == 0, result.stderr
    context = project / "ctx"
    in_app = {p.relative_to(context / "app").as_posix() for p in (context / "app").rglob("*") if p.is_file()}
    assert in_app == {
        "main.py",
        "pyproject.toml",
        ".gitignore",
        ".gcloudignore",
        "keep.log",
        "sub/local-only.txt",
        "shop/keys.py",
    }
    assert not any(SECRET.encode() in p.read_bytes() for p in context.rglob("*") if p.is_file())
    listed = dict(
        line.split(maxsplit=1)
        for line in result.stdout.split("Left out of the context:\n")[1].splitlines()
        if line.startswith("  ")
    )
    for entry in CREDENTIALS.values():
        assert listed.get(entry) == "credentials, always left out", (entry, result.stdout)
    for entry, why in PROJECT_IGNORED.values():
        assert listed.get(entry) == why, (entry, result.stdout)
    assert listed.get(".buildflow/") is None  # nothing there to list
    assert "keep.log" not in listed and "sub/local-only.txt" not in listed

    quiet = bfctl_run(["build", "--context-only", "ctx"], project, env, timeout=300)
    assert quiet.returncode == 0 and "Left out" not in quiet.stdout
