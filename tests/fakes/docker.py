"""A stand-in ``docker`` program: it records its arguments and answers ``info``, ``image inspect``,
``build`` and ``push`` the way Docker does (exit codes, the images it has built, the digest a
push prints and the daemon then records), so that no Docker daemon is needed.

A push needs credentials for the registry in Docker's config (``$DOCKER_CONFIG``, else
``~/.docker``), as Artifact Registry does: a credential helper for the host, a login kept by a
credential store (an empty ``auths`` entry), or a login in the file whose password is the token
the registry takes (``FAKE_DOCKER_TOKEN``); without one the push is refused as the registry
refuses it ("denied: Unauthenticated request").

Its environment: ``FAKE_DOCKER_LOG`` (one JSON list of arguments a line), ``FAKE_DOCKER_IMAGES``
(the images it holds), ``FAKE_DOCKER_DAEMON`` (``up`` for a daemon that answers) and
``FAKE_DOCKER_PUSHES`` (where each push records the config it read and the credentials it sent).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

SCRIPT = """\
#!{python}
import base64, hashlib, json, os, sys
from pathlib import Path


def credentials(host):
    \"\"\"The config directory a push reads, the kind of credentials it has for host, and the config.\"\"\"
    directory = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    try:
        config = json.loads(Path(directory, "config.json").read_text())
    except (OSError, ValueError):
        config = {{}}
    if host in config.get("credHelpers", {{}}):
        return directory, "helper", config
    for key, login in config.get("auths", {{}}).items():
        if key.split("://")[-1].split("/")[0] != host:
            continue
        if not login.get("auth"):
            return directory, "store" if config.get("credsStore") else "none", config
        user, _, password = base64.b64decode(login["auth"]).decode().partition(":")
        accepted = user == "oauth2accesstoken" and password == os.environ.get("FAKE_DOCKER_TOKEN")
        return directory, "token" if accepted else "refused", config
    return directory, "none", config


args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
images = Path(os.environ["FAKE_DOCKER_IMAGES"])
known = images.read_text().split() if images.exists() else []
if args[0] == "info":
    sys.exit(0 if os.environ.get("FAKE_DOCKER_DAEMON") == "up" else 1)
if args[:2] == ["image", "inspect"]:
    reference = args[-1]
    if reference not in known:
        sys.exit(1)
    if "--format" in args:
        pushed = Path(os.environ["FAKE_DOCKER_LOG"]).read_text().count(json.dumps(["push", reference]))
        digest = "sha256:" + hashlib.sha256(reference.encode()).hexdigest()
        print(json.dumps([reference.rpartition(":")[0] + "@" + digest] if pushed else []))
    sys.exit(0)
if args[0] == "build":
    reference, context = args[args.index("--tag") + 1], Path(args[-1])
    dockerfile = (context / "Dockerfile").read_text()
    print("#1 [internal] load build definition from Dockerfile")
    print("#2 FROM " + dockerfile.split("FROM ", 1)[1].split()[0])
    images.write_text("\\n".join([*known, reference]))
    sys.exit(0)
if args[0] == "push":
    if args[1] not in known:
        sys.exit(1)
    print("The push refers to repository [" + args[1].rpartition(":")[0] + "]")
    host, project, repository = args[1].split("/")[:3]
    directory, kind, config = credentials(host)
    if os.environ.get("FAKE_DOCKER_PUSHES"):
        with open(os.environ["FAKE_DOCKER_PUSHES"], "a") as pushes:
            contexts = os.path.isdir(os.path.join(directory, "contexts", "meta"))
            seen = dict(config=directory, credentials=kind, context=config.get("currentContext"), contexts=contexts)
            pushes.write(json.dumps(seen) + "\\n")
    if kind in ("none", "refused"):
        resource = "projects/" + project + "/locations/" + host.removesuffix("-docker.pkg.dev")
        print("denied: Unauthenticated request. Unauthenticated requests do not have permission "
              '"artifactregistry.repositories.uploadArtifacts" on resource "' + resource
              + "/repositories/" + repository + '" (or it may not exist)')
        sys.exit(1)
    if os.environ.get("FAKE_DOCKER_PUSH_DIGEST", "print") == "print":
        digest = "sha256:" + hashlib.sha256(args[1].encode()).hexdigest()
        print(args[1].rpartition(":")[2] + ": digest: " + digest + " size: 1234")
    sys.exit(0)
sys.exit(2)
"""


def install(bin_dir: Path) -> Path:
    """Write the stand-in as ``bin_dir/docker``; put ``bin_dir`` first on PATH to use it."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text(SCRIPT.format(python=sys.executable))
    docker.chmod(0o755)
    return docker


def digest_of(reference: str) -> str:
    """The digest the stand-in gives a pushed ``reference``."""
    return "sha256:" + hashlib.sha256(reference.encode()).hexdigest()


def pushes(log: Path) -> list[dict[str, Any]]:
    """What each push read (``FAKE_DOCKER_PUSHES``): its config directory, the kind of credentials
    it sent (helper, store, token; none or refused when it was refused), the current context, and
    whether the contexts' metadata was there."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def calls(log: Path) -> list[list[str]]:
    """The argument lists the stand-in was run with, in order."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
