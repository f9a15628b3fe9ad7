"""The names the gcp stack gives Google resources of its own: one project holds many stacks, so
each stack's service account and image repository are its own, and every name is one Google takes."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("pulumi_gcp")

from flows.notes_service import IMAGE, notes_flow
from gcp_mocks import mocked, run_program

from bfctl.providers.gcp.deploy import deployment_of, repository_id, service_name

#: Google's rules: service account ids 6-30 characters, Artifact Registry repository ids at most 63.
ACCOUNT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
REPOSITORY_ID = re.compile(r"^[a-z][a-z0-9-]{0,61}[a-z0-9]$")


def declared(service: str) -> dict[str, dict[str, str]]:
    """The account and repository the stack of ``service`` declares, as Pulumi is given them."""
    flow, primitives = notes_flow()
    deployment = deployment_of(
        flow,
        primitives,
        target="main:app",
        name=service,
        project="my-project",
        region="us-central1",
        table={},
        flags={},
    )
    assert deployment is not None
    with mocked() as monitor:
        run_program(primitives, project="my-project", deployment=deployment, image=IMAGE)
        return {name: monitor.registered[name]["inputs"] for name in ("service-account", "image-repository")}


def test_two_stacks_of_one_project_have_their_own_image_repository() -> None:
    dev, prod = declared("notes-dev"), declared("notes-prod")

    assert dev["image-repository"]["repositoryId"] == "bfctl-notes-dev"
    assert prod["image-repository"]["repositoryId"] == "bfctl-notes-prod"


def test_long_service_names_sharing_their_start_get_distinct_accounts() -> None:
    dev = declared("customer-events-pipeline-v2-dev")["service-account"]["accountId"]
    prod = declared("customer-events-pipeline-v2-prod")["service-account"]["accountId"]

    assert dev != prod
    assert dev.startswith("customer-events-pipel") and prod.startswith("customer-events-pipel")
    assert ACCOUNT_ID.match(dev) and ACCOUNT_ID.match(prod)
    assert declared("notes-dev")["service-account"]["accountId"] == "notes-dev-run"  # short names keep theirs


@pytest.mark.parametrize("length", [1, 2, 5, 24, 26, 27, 30, 45, 49, 50, 57, 58, 80])
def test_every_derived_name_is_one_google_takes(length: int) -> None:
    project = ("a1-" * 40)[:length]
    names = {stack: service_name(project, stack, {}) for stack in ("dev", "prod", "x")}
    assert len(set(names.values())) == 3
    for name in names.values():
        assert len(name) <= 49 and re.match(r"^[a-z]([a-z0-9-]*[a-z0-9])?$", name)
        flow, primitives = notes_flow()
        d = deployment_of(flow, primitives, target="main:app", name=name, project="p", region="r", table={}, flags={})
        assert d is not None
        assert ACCOUNT_ID.match(d.account_id), d.account_id
        assert REPOSITORY_ID.match(d.repository_id) and d.repository_id == repository_id(name)


def test_a_cut_service_name_keeps_a_hash_of_the_whole() -> None:
    long = "a-very-long-pulumi-project-name-for-the-events-pipeline"
    dev, prod = service_name(long, "dev", {}), service_name(long, "prod", {})

    assert dev != prod and len(dev) <= 49 and len(prod) <= 49
    assert dev.startswith("a-very-long-pulumi-project-name-for-the")
