"""Publishing an image: Cloud Build when no Docker daemon answers, Docker when one does, and no
build at all when Artifact Registry holds the tag already.

Everything goes over real HTTP on loopback: the build context is uploaded to gcp-storage-emulator,
and a stand-in of Google's token endpoint, Cloud Build and Artifact Registry (``fakes/cloudbuild.py``)
answers the rest. The credentials are a service account's key file whose ``token_uri`` points at
the stand-in (google-auth honours it there; an ``authorized_user`` file's is replaced by Google's).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import EVENTS, pulumi_path
from fakes.cloudbuild import ACCESS_TOKEN, GoogleStandIn, digest_of, serve, storage_emulator
from fakes.docker import calls, pushes
from fakes.docker import digest_of as pushed_digest
from fakes.docker import install as install_docker
from support import HELLO_FLOW, bfctl_run, make_project

from bfctl.providers.gcp import cloudbuild
from bfctl.providers.gcp.build import Published, publish_image
from bfctl.providers.gcp.cloudbuild import build_request, tarball
from bfctl.providers.gcp.context import ImageBuildError
from bfctl.providers.gcp.errors import GCPSettingsError
from bfctl.providers.gcp.image import tag_of
from bfctl.providers.gcp.registry import Endpoints

PYPROJECT = """\
[project]
name = "shop"
version = "1.0"

[tool.buildflow]
app = "main:app"

[tool.buildflow.gcp]
project = "acme-prod"
region = "europe-west1"
"""


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session: bfctl's wheel is built once, not by every test."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "shop", {"main.py": HELLO_FLOW, "pyproject.toml": PYPROJECT})


#: The bucket and account the stack of PYPROJECT's "dev" makes for Cloud Build.
SOURCES = "acme-prod-shop-dev-build-sources"
BUILDER = "projects/acme-prod/serviceAccounts/shop-dev-build@acme-prod.iam.gserviceaccount.com"


@pytest.fixture
def google(tmp_path: Path) -> Iterator[GoogleStandIn]:
    """The stand-in of a project made today, with the sources bucket its stack's apply made."""
    with (
        storage_emulator(tmp_path / "gcs", secure_by_default=True) as storage,
        serve(GoogleStandIn(storage, new_project=True)) as stand_in,
    ):
        uniform = {"uniformBucketLevelAccess": {"enabled": True}, "publicAccessPrevention": "enforced"}
        made = json.dumps({"name": SOURCES, "location": "europe-west1", "iamConfiguration": uniform}).encode()
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(f"{storage}/storage/v1/b?project=acme-prod", made, headers, method="POST")
        urllib.request.urlopen(request).close()
        yield stand_in


@pytest.fixture
def env(
    google: GoogleStandIn, tmp_path: Path, private_key: str, wheel_cache: Path, bfctl_env: dict[str, str]
) -> dict[str, str]:
    """The environment a publish runs in: these endpoints, a key file, a stand-in docker whose daemon is down."""
    key_file = tmp_path / "key.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "acme-prod",
                "private_key_id": "k1",
                "private_key": private_key,
                "client_email": "deployer@acme-prod.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{google.url}/token",
            }
        )
    )
    bin_dir = install_docker(tmp_path / "bin").parent
    return {
        **bfctl_env,
        "PATH": f"{bin_dir}{os.pathsep}{bfctl_env['PATH']}",
        "XDG_CACHE_HOME": str(wheel_cache),
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDBUILD": f"{google.url}/",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_ARTIFACTREGISTRY": f"{google.url}/",
        "STORAGE_EMULATOR_HOST": google.storage,
        "FAKE_DOCKER_LOG": str(tmp_path / "docker-calls.jsonl"),
        "FAKE_DOCKER_IMAGES": str(tmp_path / "docker-images.txt"),
        "FAKE_DOCKER_DAEMON": "down",
        "FAKE_DOCKER_PUSHES": str(tmp_path / "docker-pushes.jsonl"),
        "FAKE_DOCKER_TOKEN": ACCESS_TOKEN,  # the registry takes the stand-in's tokens
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),  # the developer's own is not read
    }


@pytest.fixture
def here(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``env`` for publishing in this process."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def publish(project: Path, lines: list[str]) -> Published:
    return publish_image(
        project, "main:app", [], project=None, region=None, say=lines.append, output=lines.append, poll_interval=0
    )


def stored(google: GoogleStandIn, bucket: str, name: str = "") -> dict[str, Any]:
    """A bucket's or an object's metadata, from the emulator."""
    path = f"/storage/v1/b/{bucket}" + (f"/o/{urllib.parse.quote(name, safe='')}" if name else "")
    with urllib.request.urlopen(google.storage + path) as response:
        found: dict[str, Any] = json.loads(response.read())
        return found


def test_cloud_build_builds_the_uploaded_context_and_gives_the_digest(
    project: Path, google: GoogleStandIn, here: dict[str, str]
) -> None:
    lines: list[str] = []
    published = publish(project, lines)

    # the source: exactly the files of the context whose hash is the image's tag
    [request] = google.requests
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(google.sources[0]), mode="r:gz") as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            assert extracted is not None  # regular files only
            files[member.name] = extracted.read()
    tag = tag_of(files)
    reference = f"europe-west1-docker.pkg.dev/acme-prod/bfctl-shop-dev/shop:{tag}"
    assert published == Published(reference, digest_of(reference), built=True)
    assert published.pinned == f"europe-west1-docker.pkg.dev/acme-prod/bfctl-shop-dev/shop@{digest_of(reference)}"
    assert {name for name in files if name.startswith("app/")} == {"app/main.py", "app/pyproject.toml"}
    assert files["app/main.py"] == HELLO_FLOW.encode()
    assert {"Dockerfile", ".dockerignore", "bfctl-deps/requirements.txt"} <= set(files)
    assert google.sources[0] == tarball(files)  # the same bytes each time: nothing varies but the code

    source = request["source"]["storageSource"]
    assert (source["bucket"], source["object"]) == (SOURCES, f"source/{tag}.tgz")
    assert source["generation"] == stored(google, SOURCES, source["object"])["generation"]
    # a new project's default build identity may not read the source: the stack's account builds
    assert request["serviceAccount"] == BUILDER
    assert request["options"] == {"logging": "CLOUD_LOGGING_ONLY"}
    assert google.denied == 0

    assert request["steps"] == [
        {"name": cloudbuild.BUILDER, "args": ["build", "--platform", "linux/amd64", "--tag", reference, "."]}
    ]
    assert request["images"] == [reference]

    assert "Cloud Build: QUEUED" in lines
    assert "Cloud Build: WORKING" in lines
    assert lines.index("Cloud Build: WORKING") < lines.index("Cloud Build: SUCCESS")
    log_url = "https://console.cloud.google.com/cloud-build/builds;region=europe-west1/build-1"
    assert f"Cloud Build build build-1 started; its log: {log_url}" in lines
    assert f"Image digest: {digest_of(reference)}" in lines
    assert calls(Path(here["FAKE_DOCKER_LOG"])) == [["info"]]  # the daemon is down: Docker builds nothing

    # google-auth got the token from the key file's token_uri, for the cloud-platform scope
    assert google.token_claims[0]["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert google.unauthorized == 0


def test_unchanged_code_is_neither_uploaded_nor_built_again(
    project: Path, google: GoogleStandIn, here: dict[str, str]
) -> None:
    first = publish(project, [])
    uploaded = stored(google, SOURCES, google.requests[0]["source"]["storageSource"]["object"])

    lines: list[str] = []
    again = publish(project, lines)

    assert again == Published(first.reference, first.digest, built=False)
    assert f"{first.reference} is in Artifact Registry already: unchanged code, no build" in lines
    assert len(google.requests) == 1
    assert stored(google, SOURCES, uploaded["name"])["generation"] == uploaded["generation"]
    assert not any("Uploading" in line for line in lines)

    (project / "main.py").write_text(HELLO_FLOW + "\n# changed\n")
    changed = publish(project, [])
    assert changed.built
    assert changed.reference != first.reference
    assert len(google.requests) == 2


def test_a_failed_build_says_why_and_where_its_log_is(
    project: Path, google: GoogleStandIn, env: dict[str, str]
) -> None:
    google.outcome, google.polls_to_finish = "FAILURE", 1
    google.status_detail = "Build step failure: build step 0 exited with 1"

    result = bfctl_run(["build", "--push"], project, env, timeout=300)

    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "the Cloud Build build build-1 ended FAILURE (Build step failure: build step 0 exited with 1)" in message
    assert "https://console.cloud.google.com/cloud-build/builds;region=europe-west1/build-1" in message
    assert "Traceback" not in result.stderr
    assert "Cloud Build: QUEUED" in result.stdout
    assert ACCESS_TOKEN not in result.stdout + result.stderr
    assert google.images == {}


def test_cloud_build_runs_where_every_project_may_build_and_pushes_to_the_stacks_region(
    project: Path, google: GoogleStandIn, here: dict[str, str]
) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT.replace("europe-west1", "europe-west3"))
    google.refused_regions = {"europe-west3"}  # a new project's first build there is refused
    lines: list[str] = []

    published = publish(project, lines)

    assert google.regions == ["us-central1"]
    assert published.reference.startswith("europe-west3-docker.pkg.dev/acme-prod/")
    assert google.images == {published.reference: published.digest}


def test_a_build_region_cloud_build_refuses_is_named_with_the_setting_to_change(
    project: Path, google: GoogleStandIn, env: dict[str, str]
) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT + 'build_region = "europe-west3"\n')
    google.refused_regions = {"europe-west3"}

    result = bfctl_run(["build", "--push"], project, env, timeout=300)

    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "Cloud Build refuses to build in europe-west3 for the project acme-prod" in message
    assert "cannot run builds in this region" in message
    assert "set build_region in [tool.buildflow.gcp] of pyproject.toml to one of us-central1," in message
    assert "Traceback" not in result.stderr
    assert google.requests == []

    (project / "pyproject.toml").write_text(PYPROJECT + "build_region = 3\n")
    result = bfctl_run(["build", "--push"], project, env, timeout=300)
    assert result.returncode == 1
    assert "build_region in [tool.buildflow.gcp] must be a Google Cloud region" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_named_build_service_account_runs_the_build_with_its_logs_in_cloud_logging(
    project: Path, google: GoogleStandIn, here: dict[str, str]
) -> None:
    account = "builder@acme-prod.iam.gserviceaccount.com"
    (project / "pyproject.toml").write_text(PYPROJECT + f'build_service_account = "{account}"\n')
    lines: list[str] = []

    published = publish(project, lines)

    [request] = google.requests
    assert request["serviceAccount"] == f"projects/acme-prod/serviceAccounts/{account}"
    assert request["options"] == {"logging": "CLOUD_LOGGING_ONLY"}
    assert google.images == {published.reference: published.digest}


def test_a_build_started_before_its_accounts_grants_are_in_effect_is_tried_again(
    project: Path, google: GoogleStandIn, here: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first apply makes the account and its grants, then builds at once: Cloud Build refuses
    the build until IAM has propagated."""
    monkeypatch.setattr(cloudbuild, "PROPAGATION_WAIT", 0.0)
    google.unpropagated = 2
    lines: list[str] = []

    published = publish(project, lines)

    assert google.denied == 2
    assert [r["serviceAccount"] for r in google.requests] == [BUILDER]
    assert google.images == {published.reference: published.digest}
    waiting = [line for line in lines if line.startswith("Cloud Build cannot act as")]
    assert waiting == [
        "Cloud Build cannot act as shop-dev-build@acme-prod.iam.gserviceaccount.com yet (IAM changes take minutes "
        "to reach it): trying again every 0s"
    ]


def test_a_build_whose_account_never_gets_access_says_which_grant_after_the_last_try(
    project: Path, google: GoogleStandIn, here: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cloudbuild, "PROPAGATION_WAIT", 0.0)
    monkeypatch.setattr(cloudbuild, "PROPAGATION_TRIES", 3)
    google.unpropagated = 10

    with pytest.raises(ImageBuildError) as refused:
        publish(project, [])

    assert google.denied == 3
    message = str(refused.value)
    assert "does not have storage.objects.get access" in message
    assert "Cloud Build still cannot act as shop-dev-build@acme-prod.iam.gserviceaccount.com" in message
    assert "roles/storage.objectViewer" in message and "`bfctl apply --target gcp`" in message


def test_the_stand_in_refuses_a_new_projects_default_build_identity(google: GoogleStandIn) -> None:
    build = build_request({"bucket": SOURCES, "object": "source/t.tgz", "generation": "1"}, "r:t")
    status, answer = google.handle(
        "POST",
        "/v1/projects/acme-prod/locations/us-central1/builds",
        {"Authorization": f"Bearer {ACCESS_TOKEN}"},
        json.dumps(build).encode(),
    )
    assert (status, answer["error"]["status"]) == (400, "INVALID_ARGUMENT")
    message = answer["error"]["message"]
    assert "-compute@developer.gserviceaccount.com does not have storage.objects.get access" in message
    assert google.requests == []


def test_a_stack_not_applied_yet_is_told_to_apply_before_a_remote_build(
    project: Path, google: GoogleStandIn, env: dict[str, str]
) -> None:
    # a stack whose apply has not made its bucket yet
    (project / "pyproject.toml").write_text(PYPROJECT + 'service = "shop-api"\n')

    result = bfctl_run(["build", "--push"], project, env, timeout=300)

    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    bucket = "gs://acme-prod-shop-api-build-sources"
    assert f"{bucket}, where the stack keeps Cloud Build's sources, does not exist" in message
    assert "`bfctl apply --target gcp` makes it" in message
    assert "Traceback" not in result.stderr
    assert google.requests == []


def test_the_stand_in_refuses_a_build_as_a_chosen_account_without_a_logging_option(google: GoogleStandIn) -> None:
    build = build_request({"bucket": "b", "object": "source/t.tgz", "generation": "1"}, "r:t")
    status, answer = google.handle(
        "POST",
        "/v1/projects/acme-prod/locations/us-central1/builds",
        {"Authorization": f"Bearer {ACCESS_TOKEN}"},
        json.dumps(
            {**build, "serviceAccount": "projects/acme-prod/serviceAccounts/b@acme-prod.iam.gserviceaccount.com"}
        ).encode(),
    )
    assert (status, answer["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert google.requests == []


def test_a_build_service_account_that_is_no_email_is_refused_before_anything_is_built(
    project: Path, google: GoogleStandIn, env: dict[str, str]
) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT + 'build_service_account = "builder"\n')

    result = bfctl_run(["build", "--push"], project, env, timeout=300)

    assert result.returncode == 1
    assert "build_service_account in [tool.buildflow.gcp] must be a service account's email" in result.stderr
    assert "Traceback" not in result.stderr
    assert google.requests == []


def test_without_push_and_without_a_daemon_nothing_is_built_remotely(
    project: Path, google: GoogleStandIn, env: dict[str, str]
) -> None:
    result = bfctl_run(["build"], project, env, timeout=300)

    assert result.returncode == 1
    assert "a remote build is always pushed" in " ".join(result.stderr.split())
    assert google.requests == []


def test_without_credentials_the_user_is_told_to_log_in(
    project: Path, google: GoogleStandIn, env: dict[str, str], tmp_path: Path
) -> None:
    no_credentials = {name: value for name, value in env.items() if name != "GOOGLE_APPLICATION_CREDENTIALS"}
    no_credentials |= {"CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "NO_GCE_CHECK": "true"}

    result = bfctl_run(["build", "--push"], project, no_credentials, timeout=300)

    assert result.returncode == 1
    assert "gcloud auth application-default login" in result.stderr
    assert "Traceback" not in result.stderr
    assert google.requests == []


def test_docker_publishes_when_its_daemon_answers(
    project: Path, google: GoogleStandIn, here: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_DAEMON", "up")
    log = Path(here["FAKE_DOCKER_LOG"])

    published = publish(project, [])

    reference = published.reference
    assert published == Published(reference, pushed_digest(reference), built=True)
    assert [call[0] for call in calls(log)] == ["info", "image", "build", "push"]
    assert google.requests == []  # Docker built it, not Cloud Build

    # the registry now holds the tag: no build, no push
    google.images[reference] = published.digest
    before = len(calls(log))
    again = publish(project, [])
    assert again == Published(reference, published.digest, built=False)
    assert calls(log)[before:] == [["info"]]


def test_docker_without_credentials_for_the_registry_pushes_with_the_deployers_token_once(
    project: Path, google: GoogleStandIn, here: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a machine where `gcloud auth configure-docker` never ran: Docker Desktop's credential
    store, a login to Docker Hub, a Colima context, nothing for Artifact Registry."""
    monkeypatch.setenv("FAKE_DOCKER_DAEMON", "up")
    config = Path(here["DOCKER_CONFIG"])
    (config / "contexts" / "meta").mkdir(parents=True)
    hub = {"https://index.docker.io/v1/": {}}
    own = json.dumps({"auths": hub, "credsStore": "desktop", "currentContext": "colima"})
    (config / "config.json").write_text(own)
    lines: list[str] = []

    published = publish(project, lines)

    [push] = pushes(Path(here["FAKE_DOCKER_PUSHES"]))
    assert push["credentials"] == "token"  # oauth2accesstoken and the deployer's access token
    assert (push["context"], push["contexts"]) == ("colima", True)  # the usual daemon
    assert push["config"] != str(config) and not Path(push["config"]).exists()  # for this push only
    assert (config / "config.json").read_text() == own  # the user's config is left as it was
    assert published.digest == pushed_digest(published.reference)
    host = "europe-west1-docker.pkg.dev"
    assert f"Docker has no credentials for {host}: pushing with your Google access token, for this push only" in lines
    assert not any(ACCESS_TOKEN in line for line in lines)


def test_docker_pushes_with_the_credential_helper_the_user_set_for_the_registry(
    project: Path, google: GoogleStandIn, here: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_DAEMON", "up")
    config = Path(here["DOCKER_CONFIG"])
    config.mkdir()
    (config / "config.json").write_text('{"credHelpers": {"europe-west1-docker.pkg.dev": "gcloud"}}')
    lines: list[str] = []

    publish(project, lines)

    [push] = pushes(Path(here["FAKE_DOCKER_PUSHES"]))
    assert (push["credentials"], push["config"]) == ("helper", str(config))
    assert not any("Docker has no credentials" in line for line in lines)


def test_a_push_the_registry_refuses_names_the_role_and_the_command(
    project: Path, google: GoogleStandIn, env: dict[str, str]
) -> None:
    env = {**env, "FAKE_DOCKER_DAEMON": "up", "FAKE_DOCKER_TOKEN": "ya29.another-token"}

    result = bfctl_run(["build", "--push"], project, env, timeout=300)

    assert result.returncode == 1
    assert "denied: Unauthenticated request" in result.stdout  # Docker's own words, passed on
    message = " ".join(result.stderr.split())
    assert "europe-west1-docker.pkg.dev refused the credentials Docker sent" in message
    assert "roles/artifactregistry.writer" in message
    assert "`gcloud auth configure-docker europe-west1-docker.pkg.dev`" in message
    assert "Traceback" not in result.stderr
    assert ACCESS_TOKEN not in result.stdout + result.stderr


def test_docker_without_credentials_and_no_google_login_is_told_both_commands(
    project: Path, google: GoogleStandIn, env: dict[str, str], tmp_path: Path
) -> None:
    no_credentials = {name: value for name, value in env.items() if name != "GOOGLE_APPLICATION_CREDENTIALS"}
    no_credentials |= {"CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "NO_GCE_CHECK": "true", "FAKE_DOCKER_DAEMON": "up"}

    result = bfctl_run(["build", "--push"], project, no_credentials, timeout=300)

    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "Docker has no credentials for europe-west1-docker.pkg.dev, and no Google credentials" in message
    assert "`gcloud auth configure-docker europe-west1-docker.pkg.dev`" in message
    assert "`gcloud auth application-default login`" in message
    assert "Traceback" not in result.stderr
    assert [call[0] for call in calls(Path(env["FAKE_DOCKER_LOG"]))] == ["info"]  # said before building


def test_the_digest_comes_from_docker_when_push_does_not_print_it(
    project: Path, google: GoogleStandIn, here: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_DAEMON", "up")
    monkeypatch.setenv("FAKE_DOCKER_PUSH_DIGEST", "none")

    published = publish(project, [])

    assert published.digest == pushed_digest(published.reference)
    assert calls(Path(here["FAKE_DOCKER_LOG"]))[-1][:3] == ["image", "inspect", "--format"]


def test_a_publish_needs_the_registry_location(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(HELLO_FLOW)

    with pytest.raises(GCPSettingsError, match="no Google Cloud project"):
        publish(tmp_path, [])


def test_endpoints_are_overridden_as_gcloud_and_the_storage_libraries_do() -> None:
    assert Endpoints.from_environment({}) == Endpoints(
        "https://cloudbuild.googleapis.com/",
        "https://artifactregistry.googleapis.com/",
        "https://storage.googleapis.com/",
        storage_emulated=False,
    )
    overridden = Endpoints.from_environment(
        {
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDBUILD": "https://cloudbuild-vialink1.p.googleapis.com",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_ARTIFACTREGISTRY": "https://ar.example/",
            "STORAGE_EMULATOR_HOST": "localhost:9023",
        }
    )
    assert overridden == Endpoints(
        "https://cloudbuild-vialink1.p.googleapis.com/", "https://ar.example/", "http://localhost:9023/", True
    )


def applier(project: Path, env: dict[str, str], tmp_path: Path, scenario: Path) -> Callable[[], list[str]]:
    """``bfctl apply --target gcp --yes`` with the stand-in ``pulumi`` playing ``scenario``: each
    call applies once and answers the engine operations it ran (preview, up, ...)."""
    pulumi_log = tmp_path / "pulumi-calls.jsonl"
    env = {
        **env,
        "PATH": pulumi_path(tmp_path / "pulumi-bin", env["PATH"]),
        "PULUMI_CONFIG_PASSPHRASE": "correct horse",
        "FAKE_PULUMI_LOG": str(pulumi_log),
        "FAKE_PULUMI_SCENARIO": str(scenario),
    }

    def apply() -> list[str]:
        pulumi_log.unlink(missing_ok=True)
        result = bfctl_run(["apply", "--target", "gcp", "--yes"], project, env)
        assert result.returncode == 0, result.stderr
        calls = [json.loads(line)["args"][0] for line in pulumi_log.read_text().splitlines()]
        return [op for op in calls if op in ("preview", "up")]

    return apply


def test_apply_makes_the_repository_then_publishes_then_deploys_and_skips_unchanged_code(
    project: Path, google: GoogleStandIn, env: dict[str, str], tmp_path: Path
) -> None:
    """``bfctl apply --target gcp`` as a user runs it, with the stand-in ``pulumi``: the first
    deploy runs ``up`` twice around the push; unchanged code is neither built nor rolled out."""
    google.polls_to_finish = 0  # the CLI waits its real poll interval before each look
    apply = applier(project, env, tmp_path, EVENTS / "notes_create.json")
    record = project / ".buildflow" / "state" / "gcp-dev.deployed.json"

    assert apply() == ["preview", "up", "up"]
    (reference,) = google.images
    deployed = json.loads(record.read_text())
    assert deployed["image"] == f"{reference.rpartition(':')[0]}@{digest_of(reference)}"
    assert deployed["tag"] == reference.rpartition(":")[2] and deployed["has_repository"]

    assert apply() == ["preview", "up"]
    assert len(google.requests) == 1  # no build
    assert json.loads(record.read_text())["image"] == deployed["image"]

    (project / "main.py").write_text(HELLO_FLOW + "\n# changed\n")
    assert apply() == ["preview", "up"]
    assert len(google.requests) == 2
    assert json.loads(record.read_text())["image"] not in (None, deployed["image"])


def test_a_stack_applied_before_it_had_a_build_identity_gets_one_before_the_next_build(
    project: Path, google: GoogleStandIn, env: dict[str, str], tmp_path: Path
) -> None:
    """A stack whose outputs name no builds' bucket was applied by a version that built as Cloud
    Build's default identity: its next deploy first makes the bucket, account and grants (one
    ``up``), then builds as that account, then rolls the new image out (a second ``up``)."""
    google.polls_to_finish = 0
    scenario = json.loads((EVENTS / "notes_create.json").read_text())
    older = tmp_path / "older-stack.json"
    apply = applier(project, env, tmp_path, older)

    del scenario["outputs"]["deployment"]["build_sources"]  # the outputs an earlier version's stack has
    older.write_text(json.dumps(scenario))
    apply()
    assert len(google.requests) == 1

    (project / "main.py").write_text(HELLO_FLOW + "\n# changed\n")
    assert apply() == ["preview", "up", "up"]
    assert len(google.requests) == 2
