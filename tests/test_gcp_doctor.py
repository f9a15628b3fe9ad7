"""``bfctl doctor --target gcp`` and the preflight of ``plan`` and ``apply``: each check against a
stand-in of the Google API it asks (``fakes/google_apis.py``), answering both ways.

Nothing leaves this machine: the credentials are a service account key whose token endpoint is
a stand-in, every API's endpoint is overridden to a loopback stand-in, google-auth's probe of the
metadata server is off (``NO_GCE_CHECK``) and pointed at a closed loopback port besides, and
``docker`` is the stand-in program.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import EVENTS, pulumi_path
from fakes.docker import install as install_docker
from fakes.google_apis import GoogleProject, Served, key_file, serve
from support import bfctl_run, make_project

from bfctl.doctor import SKIP_ENV
from bfctl.infra import planned_primitives
from bfctl.providers.base import DeployRequest
from bfctl.providers.checks import Check
from bfctl.providers.gcp.provider import GCPProvider
from buildflow import Flow
from buildflow.io.gcp import GCSBucket

DEPLOYER = "deployer@acme-prod.iam.gserviceaccount.com"
BUILDER = "builder@acme-prod.iam.gserviceaccount.com"
#: What a deploy of FLOW uses, as ``bfctl.providers.gcp.deploy.apis`` lists it.
APIS = {
    "storage.googleapis.com",
    "run.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "iam.googleapis.com",
    "cloudtrace.googleapis.com",
    "telemetry.googleapis.com",
    "cloudresourcemanager.googleapis.com",
}
FLOW = """\
from buildflow import Flow
from buildflow.io.gcp import GCSBucket

app = Flow()
app.manage(GCSBucket(project_id="acme-prod", bucket_name="acme-uploads"))
service = app.service()


@service.endpoint("/hello", method="GET")
def hello() -> str:
    return "hello"
"""
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


def shop() -> Flow:
    """FLOW, made here: a bucket and a service."""
    app = Flow()
    app.manage(GCSBucket(project_id="acme-prod", bucket_name="acme-uploads"))
    service = app.service()

    @service.endpoint("/hello", method="GET")
    def hello() -> str:
        return "hello"

    return app


@pytest.fixture
def google() -> GoogleProject:
    """A project where everything is in order."""
    return GoogleProject(enabled=set(APIS))


@pytest.fixture
def served(google: GoogleProject) -> Iterator[Served]:
    with serve(google) as stand_ins:
        yield stand_ins


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "shop", {"main.py": FLOW, "pyproject.toml": PYPROJECT})


@pytest.fixture
def env(served: Served, tmp_path: Path, bfctl_env: dict[str, str]) -> dict[str, str]:
    """bfctl's environment with only the stand-ins to reach, and the preflight on."""
    kept = {k: v for k, v in bfctl_env.items() if k != SKIP_ENV and not k.startswith(("GOOGLE_", "CLOUDSDK_", "GCE_"))}
    docker_bin = install_docker(tmp_path / "bin").parent
    return {
        **kept,
        **served.env,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_file(tmp_path / "key.json", served.token_uri, DEPLOYER)),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "NO_GCE_CHECK": "true",  # google-auth compares with "true" exactly
        "GCE_METADATA_HOST": "127.0.0.1:9",
        "GCE_METADATA_IP": "127.0.0.1:9",
        "PATH": f"{docker_bin}{os.pathsep}{kept['PATH']}",
        "FAKE_DOCKER_LOG": str(tmp_path / "docker-calls.jsonl"),
        "FAKE_DOCKER_IMAGES": str(tmp_path / "docker-images.txt"),
        "FAKE_DOCKER_DAEMON": "down",
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
    }


@pytest.fixture
def here(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``env`` in this process."""
    for name in [n for n in os.environ if n.startswith(("GOOGLE_", "CLOUDSDK_"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def preflight(project: Path, flags: dict[str, Any] | None = None, image: str | None = None) -> dict[str, list[Check]]:
    """The preflight of FLOW in ``project`` (with these command flags), its checks by name."""
    flow = shop()
    provider = GCPProvider(project, deploy=DeployRequest(flow, "main:app", flags or {}, image=image))
    checks = provider.preflight(planned_primitives(flow, provider)[0])
    found: dict[str, list[Check]] = {}
    for check in checks:
        found.setdefault(check.name, []).append(check)
    return found


def statuses(found: dict[str, list[Check]], name: str) -> list[str]:
    return [c.status for c in found[name]]


def with_settings(project: Path, lines: str) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT + lines)


# -- each check, both ways -----------------------------------------------------------------------


def test_a_project_in_order_passes_and_only_what_apply_does_is_asked(
    project: Path, google: GoogleProject, here: dict[str, str]
) -> None:
    found = preflight(project)

    assert not [c for checks in found.values() for c in checks if c.failed]
    assert statuses(found, "credentials") == ["ok"]
    assert DEPLOYER in found["credentials"][0].summary
    assert [statuses(found, name) for name in ("project", "billing", "APIs", "permissions")] == [["ok"]] * 4
    assert google.tokens == 1  # one sign-in for every question
    # the permissions apply uses for a bucket and a private service built by Cloud Build as the
    # account the stack makes, no more
    assert google.tested == [
        [
            "artifactregistry.repositories.create",
            "artifactregistry.repositories.setIamPolicy",  # the build account pushes to the repository
            "cloudbuild.builds.create",
            "iam.serviceAccounts.actAs",
            "iam.serviceAccounts.create",
            "resourcemanager.projects.get",
            "resourcemanager.projects.setIamPolicy",  # ... and writes logs
            "run.services.create",
            "serviceusage.services.enable",
            "storage.buckets.create",
            "storage.buckets.setIamPolicy",
            "storage.objects.create",
        ]
    ]
    # a private service: domain-restricted sharing is not asked about
    assert (
        "orgpolicy",
        "GET",
        "/v2/projects/acme-prod/policies/iam.allowedPolicyMemberDomains:getEffectivePolicy",
    ) not in google.asked


def test_a_project_that_is_not_there_fails_and_nothing_else_is_asked(
    project: Path, google: GoogleProject, here: dict[str, str]
) -> None:
    google.exists = False

    found = preflight(project)

    assert statuses(found, "project") == ["fail"]
    assert "acme-prod does not exist" in found["project"][0].summary
    assert "gcloud projects list" in found["project"][0].fix
    assert "billing" not in found and "permissions" not in found
    assert [api for api, _, _ in google.asked] == ["cloudresourcemanager"]


def test_billing_not_enabled_fails_with_the_command_that_links_an_account(
    project: Path, google: GoogleProject, here: dict[str, str]
) -> None:
    assert statuses(preflight(project), "billing") == ["ok"]
    google.billing = False

    (billing,) = preflight(project)["billing"]

    assert billing.status == "fail"
    assert billing.fix.startswith("gcloud billing projects link acme-prod --billing-account=")


def test_an_api_the_question_needs_that_is_not_enabled_is_said_and_fails_nothing(
    project: Path, google: GoogleProject, here: dict[str, str]
) -> None:
    google.refusing = {"cloudbilling"}

    found = preflight(project)

    (billing,) = found["billing"]
    assert billing.status == "unknown"
    assert "cloudbilling.googleapis.com is not enabled in 412233445566" in billing.summary
    assert billing.fix.startswith("gcloud services enable cloudbilling.googleapis.com --project 412233445566")
    assert not [c for checks in found.values() for c in checks if c.failed]


def test_apis_not_enabled_fail_only_where_the_stack_may_not_enable_them(
    project: Path, google: GoogleProject, here: dict[str, str]
) -> None:
    google.enabled = APIS - {"run.googleapis.com", "iam.googleapis.com"}

    (managed,) = preflight(project)["APIs"]
    with_settings(project, "manage_apis = false\n")
    (unmanaged,) = preflight(project)["APIs"]

    assert managed.status == "note"
    assert "the stack enables run.googleapis.com, iam.googleapis.com" in managed.summary
    assert unmanaged.status == "fail"
    assert unmanaged.fix == "gcloud services enable run.googleapis.com iam.googleapis.com --project acme-prod"
    google.enabled = set(APIS)
    assert statuses(preflight(project), "APIs") == ["ok"]


def test_domain_restricted_sharing_fails_a_public_service_and_says_how_else(
    project: Path, google: GoogleProject, here: dict[str, str]
) -> None:
    google.policies["iam.allowedPolicyMemberDomains"] = [{"values": {"allowedValues": ["C03xyz123"]}}]

    (refused,) = preflight(project, {"public": True})["org policies"][:1]
    google.policies["iam.allowedPolicyMemberDomains"] = [{"allowAll": True}]
    (allowed,) = preflight(project, {"public": True})["org policies"][:1]

    assert refused.status == "fail"
    assert "allUsers invoker would be refused" in refused.summary
    assert "apply without --public" in refused.fix and "roles/run.invoker" in refused.fix
    assert allowed.status == "ok"


def test_uniform_bucket_access_enforced_is_only_a_note(
    project: Path, google: GoogleProject, here: dict[str, str]
) -> None:
    assert statuses(preflight(project), "org policies") == ["ok"]
    google.policies["storage.uniformBucketLevelAccess"] = [{"enforce": True}]

    (policy,) = preflight(project)["org policies"]

    assert policy.status == "note"
    assert "uniformBucketLevelAccess enforced" in policy.summary


def test_policies_the_deployer_may_not_read_are_a_note_not_a_failure(
    project: Path, google: GoogleProject, here: dict[str, str]
) -> None:
    google.policies_readable = False

    policies = preflight(project, {"public": True})["org policies"]

    assert [c.status for c in policies] == ["note", "note"]
    assert "deploying does not need it" in policies[0].summary
    google.policies_readable, google.refusing = True, {"orgpolicy"}
    (disabled,) = preflight(project, {"public": True})["org policies"]  # one line for both questions
    assert disabled.status == "unknown"
    assert "orgpolicy.googleapis.com is not enabled" in disabled.summary


def test_missing_permissions_fail_naming_the_roles_that_grant_them(
    project: Path, google: GoogleProject, here: dict[str, str]
) -> None:
    google.held = {"resourcemanager.projects.get", "storage.buckets.create", "storage.buckets.setIamPolicy"}

    (permissions,) = preflight(project)["permissions"]

    assert permissions.status == "fail"
    assert "lacks artifactregistry.repositories.create, artifactregistry.repositories.setIamPolicy," in (
        permissions.summary
    )
    assert "cloudbuild.builds.create" in permissions.summary
    assert "roles/run.admin" in permissions.fix and "roles/iam.serviceAccountUser" in permissions.fix
    assert f"--member=serviceAccount:{DEPLOYER}" in permissions.fix


def test_docker_building_asks_to_push_instead_of_to_run_cloud_build(
    project: Path, google: GoogleProject, here: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_DAEMON", "up")

    found = preflight(project)
    config = Path(here["DOCKER_CONFIG"])
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"credHelpers": {"europe-west1-docker.pkg.dev": "gcloud"}}))
    signed_in = preflight(project)

    registry = "europe-west1-docker.pkg.dev"
    assert found["builder"][0].summary == (
        f"Docker builds the image and pushes it to {registry} with your Google access token (Docker has no "
        "credentials for it)"
    )
    assert signed_in["builder"][0].summary.endswith(f"{registry} with Docker's credentials for it")
    assert "artifactregistry.repositories.uploadArtifacts" in google.tested[0]
    assert "cloudbuild.builds.create" not in google.tested[0]
    # an image given: nothing is built, and nobody is asked who would build it
    assert "builder" not in preflight(project, image="europe-docker.pkg.dev/acme-prod/images/shop@sha256:0")


def test_the_build_identity_exists_may_be_used_and_has_what_a_build_needs(
    project: Path, google: GoogleProject, here: dict[str, str]
) -> None:
    with_settings(project, f'build_service_account = "{BUILDER}"\n')

    def identity() -> Check:
        (check,) = preflight(project)["build identity"]
        return check

    missing = identity()
    google.accounts[BUILDER] = set()
    not_usable = identity()
    google.accounts[BUILDER] = {"iam.serviceAccounts.actAs"}
    google.bindings = [{"role": "roles/storage.objectViewer", "members": [f"serviceAccount:{BUILDER}"]}]
    few_roles = identity()
    google.bindings.append({"role": "roles/logging.logWriter", "members": [f"serviceAccount:{BUILDER}"]})
    ready = identity()
    google.bindings = None
    unreadable = identity()

    assert (missing.status, missing.summary) == ("fail", f"build_service_account {BUILDER} does not exist")
    assert missing.fix.startswith("gcloud iam service-accounts create builder --project acme-prod")
    assert not_usable.status == "fail"
    assert not_usable.fix == (
        f"gcloud iam service-accounts add-iam-policy-binding {BUILDER} --member=serviceAccount:{DEPLOYER} "
        "--role=roles/iam.serviceAccountUser"
    )
    # the stack grants a named account read on its sources bucket and push to its repository:
    # writing logs, a project binding, is what the user grants
    assert few_roles.status == "warn"
    assert "roles/logging.logWriter (writes the build's logs)" in few_roles.summary
    assert "storage" not in few_roles.summary and "artifactregistry" not in few_roles.summary
    assert "--role=$ROLE" in few_roles.fix and "roles/logging.logWriter" in few_roles.fix
    assert ready.status == "ok"
    assert unreadable.status == "note"


def test_settings_cloud_run_refuses_fail_before_google_is_asked(
    project: Path, google: GoogleProject, here: dict[str, str]
) -> None:
    with_settings(project, 'cpu = 6\nmemory = "2Gi"\n')

    found = preflight(project)

    assert statuses(found, "settings") == ["fail"]
    assert "Cloud Run gives 6 CPUs at least 4Gi of memory" in found["settings"][0].summary
    assert google.asked == []


# -- the command -----------------------------------------------------------------------------------


def test_doctor_shows_every_check_on_one_screen_and_exits_0(project: Path, env: dict[str, str]) -> None:
    result = bfctl_run(["doctor", "--target", "gcp"], project, env)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Preflight of stack `dev` on the gcp target:"
    assert [line.split()[1] for line in lines[1:] if line.startswith("  ✓")] == [
        "credentials",
        "settings",
        "project",
        "billing",
        "APIs",
        "org",
        "permissions",
    ]
    assert lines[-1].startswith("No check failed")
    assert "ya29" not in result.stdout + result.stderr  # the token is never shown


def test_doctor_exits_1_naming_each_fix(project: Path, google: GoogleProject, env: dict[str, str]) -> None:
    google.billing = False
    google.held = set()

    result = bfctl_run(["doctor", "--target", "gcp", "--public"], project, env)

    assert result.returncode == 1
    assert "  ✗ billing" in result.stdout
    assert "fix: gcloud billing projects link acme-prod" in result.stdout
    assert "fix: a project owner grants" in result.stdout
    assert "2 of " in result.stdout.splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_doctor_without_credentials_says_how_to_sign_in_and_asks_nobody(
    project: Path, google: GoogleProject, env: dict[str, str]
) -> None:
    no_credentials = {k: v for k, v in env.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}

    result = bfctl_run(["doctor", "--target", "gcp"], project, no_credentials)

    assert result.returncode == 1
    assert "✗ credentials  no Google credentials were found" in result.stdout
    assert "fix: run `gcloud auth application-default login`" in result.stdout
    assert google.asked == [] and google.tokens == 0


def test_plan_and_apply_stop_before_pulumi_when_a_check_fails(
    project: Path, google: GoogleProject, env: dict[str, str], tmp_path: Path
) -> None:
    pulumi_log = tmp_path / "pulumi-calls.jsonl"
    env = {
        **env,
        "PATH": pulumi_path(tmp_path / "pulumi-bin", env["PATH"]),
        "PULUMI_CONFIG_PASSPHRASE": "correct horse",
        "FAKE_PULUMI_LOG": str(pulumi_log),
        "FAKE_PULUMI_SCENARIO": str(EVENTS / "notes_create.json"),
    }
    google.billing = False

    planned = bfctl_run(["plan", "--target", "gcp"], project, env)
    applied = bfctl_run(["apply", "--target", "gcp", "--yes"], project, env)

    for result in (planned, applied):
        assert result.returncode == 1
        assert "✗ billing" in result.stderr
        assert "nothing was changed" in result.stderr and "--skip-preflight" in result.stderr
    assert not pulumi_log.exists()

    skipped = bfctl_run(["plan", "--target", "gcp", "--skip-preflight"], project, env)
    assert "✗ billing" not in skipped.stderr
    assert [json.loads(line)["args"][0] for line in pulumi_log.read_text().splitlines()][:1] == ["version"]

    google.billing = True
    pulumi_log.unlink()
    passed = bfctl_run(["plan", "--target", "gcp"], project, env)
    assert "Preflight" not in passed.stdout + passed.stderr, passed.stderr  # a passing preflight keeps quiet
    assert pulumi_log.exists(), passed.stderr


def test_doctor_on_the_local_target_checks_the_embedded_postgresql(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    flow = """\
from buildflow import Flow
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance
from buildflow.types.gcp import CloudSQLInstanceSettings

app = Flow()
settings = CloudSQLInstanceSettings(tier="db-f1-micro")
instance = CloudSQLInstance("notes-db", "my-project", "POSTGRES_15", settings, "us-central1")
app.manage(instance, CloudSQLDatabase(instance=instance, database_name="notes"))
"""
    project = make_project(tmp_path / "notes", {"main.py": flow})
    env = {k: v for k, v in bfctl_env.items() if k != SKIP_ENV}

    result = bfctl_run(["doctor", "main:app"], project, env)

    assert result.returncode == 0, result.stderr
    assert "  ✓ PostgreSQL  the embedded PostgreSQL server's programs are installed" in result.stdout
