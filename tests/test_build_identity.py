"""What Cloud Build runs as, declared by the gcp program under Pulumi's mocks: the stack's own
account with exactly three grants, each on only its resource, and the bucket its sources go to;
or, when ``build_service_account`` names one, that account, granted only on the stack's resources."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("pulumi_gcp")

from flows.notes_service import IMAGE, notes_flow
from gcp_mocks import RecordingMonitor, by_type, run_program

from bfctl.providers.gcp.cloudbuild import remote
from bfctl.providers.gcp.deploy import Deployment, build_account_id, deployment_of, sources_bucket
from bfctl.providers.gcp.errors import GCPSettingsError
from buildflow import Flow

ACCOUNT = "gcp:serviceaccount/account:Account"
BUILDER = "notes-dev-build@my-project.iam.gserviceaccount.com"


def deploy(flow: Flow, primitives: list[Any], table: dict[str, Any], name: str = "notes-dev") -> Deployment:
    deployment = deployment_of(
        flow,
        primitives,
        target="main:app",
        name=name,
        project="my-project",
        region="us-central1",
        table=table,
        flags={},
    )
    assert deployment is not None
    return deployment


def bindings_of(monitor: RecordingMonitor, member: str) -> dict[str, tuple[str, str, str]]:
    """Every role binding of ``member``: its Pulumi name -> (type, role, what it is on)."""
    found = {}
    for name, r in monitor.registered.items():
        inputs = r["inputs"]
        if inputs.get("member") == member:
            on = inputs.get("bucket") or inputs.get("repository") or inputs.get("project")
            found[name] = (r["type"].rpartition(":")[2], inputs["role"], on)
    return found


def test_builds_run_as_an_account_the_stack_makes_with_exactly_what_a_build_does(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow()
    deployment = deploy(flow, primitives, {})
    run_program(primitives, project="my-project", deployment=deployment, image=IMAGE)

    (account,) = (r for r in by_type(monitor, ACCOUNT).values() if r["inputs"]["accountId"].endswith("-build"))
    assert account["inputs"]["accountId"] == "notes-dev-build"
    assert account["inputs"]["project"] == "my-project"
    assert deployment.build_account == BUILDER
    bucket = "my-project-notes-dev-build-sources"
    assert bindings_of(monitor, f"serviceAccount:{BUILDER}") == {
        "build-reads-sources": ("BucketIAMMember", "roles/storage.objectViewer", bucket),
        "build-writes-logs": ("IAMMember", "roles/logging.logWriter", "my-project"),
        "build-pushes-images": ("RepositoryIamMember", "roles/artifactregistry.writer", "bfctl-notes-dev"),
    }
    pushes = monitor.registered["build-pushes-images"]["inputs"]
    assert (pushes["project"], pushes["location"]) == ("my-project", "us-central1")
    # the runtime's account gets none of it
    assert not {
        n
        for n, b in bindings_of(monitor, "serviceAccount:notes-dev-run@my-project.iam.gserviceaccount.com").items()
        if b[1] in ("roles/logging.logWriter", "roles/artifactregistry.writer")
    }


def test_the_sources_bucket_is_the_stacks_own_uniform_and_never_public(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow()
    run_program(primitives, project="my-project", deployment=deploy(flow, primitives, {}), image=IMAGE)

    sources = monitor.registered["build-sources"]
    assert sources["type"] == "gcp:storage/bucket:Bucket"
    inputs = sources["inputs"]
    assert (inputs["name"], inputs["project"], inputs["location"]) == (
        "my-project-notes-dev-build-sources",
        "my-project",
        "us-central1",
    )
    assert inputs["uniformBucketLevelAccess"] is True
    assert inputs["publicAccessPrevention"] == "enforced"
    assert inputs["forceDestroy"] is True  # destroy deletes the uploaded sources with it
    assert inputs["lifecycleRules"] == [{"action": {"type": "Delete"}, "condition": {"age": 7}}]


def test_a_named_build_account_is_not_made_and_is_granted_only_on_the_stacks_resources(
    monitor: RecordingMonitor,
) -> None:
    named = "builder@my-project.iam.gserviceaccount.com"
    flow, primitives = notes_flow()
    deployment = deploy(flow, primitives, {"build_service_account": named})
    run_program(primitives, project="my-project", deployment=deployment, image=IMAGE)

    assert deployment.build_account == named
    assert not any(r["inputs"]["accountId"].endswith("-build") for r in by_type(monitor, ACCOUNT).values())
    assert bindings_of(monitor, f"serviceAccount:{named}") == {
        "build-reads-sources": ("BucketIAMMember", "roles/storage.objectViewer", "my-project-notes-dev-build-sources"),
        "build-pushes-images": ("RepositoryIamMember", "roles/artifactregistry.writer", "bfctl-notes-dev"),
    }


def test_what_a_publish_builds_as_is_what_the_stack_declares() -> None:
    flow, primitives = notes_flow()
    deployment = deploy(flow, primitives, {})

    built = remote({}, "us-central1", "my-project", "notes-dev")

    assert built.service_account == f"projects/my-project/serviceAccounts/{deployment.build_account}"
    assert built.sources == deployment.sources_bucket


def test_build_names_are_valid_and_per_stack_however_long_the_service() -> None:
    long = "customer-events-pipeline-v2"
    ids = {build_account_id(f"{long}-{stack}") for stack in ("dev", "prod")}
    assert len(ids) == 2
    assert all(6 <= len(i) <= 30 and i[0].isalpha() and i[-1].isalnum() for i in ids)
    buckets = {sources_bucket("acme-analytics-production-7", f"{long}-{stack}") for stack in ("dev", "prod")}
    assert len(buckets) == 2 and all(3 <= len(b) <= 63 for b in buckets)
    assert sources_bucket("example.com:shop", "shop-dev") == "example-com-shop-shop-dev-build-sources"
    assert remote({}, "us-central1", "example.com:shop", "shop-dev").service_account == (
        "projects/example.com:shop/serviceAccounts/shop-dev-build@shop.example.com.iam.gserviceaccount.com"
    )


def test_a_named_build_account_that_is_no_email_is_refused_when_the_deployment_is_made() -> None:
    flow, primitives = notes_flow()
    with pytest.raises(GCPSettingsError, match=r"build_service_account in \[tool.buildflow.gcp\] must be"):
        deploy(flow, primitives, {"build_service_account": "builder"})
