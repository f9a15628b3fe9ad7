"""A new revision that reads a secret whose accessor binding IAM has not applied yet.

The service is made after its account's bindings (Pulumi's mocks show the dependency), and
while Cloud Run still refuses the revision ("Permission denied on secret"), apply waits and
asks for a new revision, a bounded number of times. The stand-in ``pulumi`` answers the first
``up`` with Google's refusal and the next ones as told.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("pulumi_gcp")

from fakes import EVENTS
from fakes.pulumi_stand_in import Fake, Recorder
from flows.notes_service import IMAGE, deploy, notes_flow
from gcp_mocks import RecordingMonitor, mocked, run_inline, run_program
from pulumi import automation as auto

from bfctl.providers.base import DeployRequest
from bfctl.providers.gcp import GCPProvider
from bfctl.providers.gcp import provider as gcp_provider
from bfctl.providers.gcp.errors import PulumiOperationError
from bfctl.providers.gcp.service import REDEPLOY_LABEL

#: Cloud Run's answer, as pulumi-gcp reports it, for a revision whose account cannot read a secret yet.
REFUSED = (
    "1 error occurred:\n\t* Error waiting to create Service: Error waiting for Creating Service: Error code 9, "
    "message: Revision 'notes-dev-00001-x2k' is not ready and cannot serve traffic. "
    "spec.template.spec.containers[0].env[3].value_from.secret_key_ref.name: Permission denied on secret: "
    "projects/123456789012/secrets/notes-dev-notes-db-password/versions/1 for Revision service account "
    "notes-dev-run@my-project.iam.gserviceaccount.com. The service account used must be granted the 'Secret "
    "Manager Secret Accessor' role (roles/secretmanager.secretAccessor) at the secret, project or higher level."
)
#: A revision that fails for its own code: waiting would not help.
CRASHED = (
    "1 error occurred:\n\t* Error waiting to create Service: Error waiting for Creating Service: Error code 9, "
    "message: Revision 'notes-dev-00001-x2k' is not ready and cannot serve traffic. The user-provided container "
    "failed to start and listen on the port defined provided by the PORT=8080 environment variable."
)
SERVICE_URN = "gcp:cloudrunv2/service:Service::service"


def service_fails(message: str) -> dict[str, Any]:
    """The ``up`` of notes_up_fails.json, with the service failing as Cloud Run does."""
    text = (
        (EVENTS / "notes_up_fails.json")
        .read_text()
        .replace("gcp:sql/user:User::my-project:notes-db/users/notes", SERVICE_URN)
        .replace('"gcp:sql/user:User"', '"gcp:cloudrunv2/service:Service"')
        .replace("googleapi: Error 400: Invalid request: password is too weak., invalid", json.dumps(message)[1:-1])
    )
    step: dict[str, Any] = json.loads(text)["up"]
    return step


@pytest.fixture
def scenario(fake: Fake, tmp_path: Path) -> Callable[..., None]:
    def ups(*steps: dict[str, Any]) -> None:
        document = json.loads((EVENTS / "notes_create.json").read_text())
        document["outputs"]["_secrets"] = {"notes-db-password": "generated-by-the-stack-0123456789"}
        document["secret_outputs"] = ["_secrets"]
        document["up"] = [*steps]
        (tmp_path / "scenario.json").write_text(json.dumps(document))
        fake.monkeypatch.setenv("FAKE_PULUMI_SCENARIO", str(tmp_path / "scenario.json"))

    return ups


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    return Fake(tmp_path, monkeypatch)


@pytest.fixture
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> tuple[float, ...]:
    """Three retries, none waited for (the waits themselves are Google's time, not the test's)."""
    waits = (0.0, 0.0, 0.0)
    monkeypatch.setattr(gcp_provider, "SECRET_ACCESS_WAITS", waits)
    return waits


@pytest.fixture
def up_programs(monkeypatch: pytest.MonkeyPatch) -> list[Callable[[], None]]:
    """The inline program of each ``up`` the Automation API runs."""
    given: list[Callable[[], None]] = []
    real = auto.Stack.up

    def spy(self: auto.Stack, *args: Any, **kwargs: Any) -> Any:
        given.append(self.workspace.program)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(auto.Stack, "up", spy)
    return given


def service_of(program: Callable[[], None]) -> dict[str, Any]:
    with mocked() as monitor:
        run_inline(program)
    return monitor.registered["service"]


def applying(project: Path, said: list[str]) -> GCPProvider:
    flow, _ = notes_flow()
    return GCPProvider(project, "dev", deploy=DeployRequest(flow, "main:app", image=IMAGE, say=said.append))


def project_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "notes"
    directory.mkdir()
    (directory / "main.py").write_text("# the flow\n")
    return directory


def test_the_service_is_made_after_the_secret_accessor_binding(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow()
    run_program(primitives, project="my-project", deployment=deploy(flow, primitives), image=IMAGE)

    urns = {r["urn"]: name for name, r in monitor.registered.items()}
    after = {urns[u] for u in monitor.registered["service"]["dependencies"] if u in urns}
    assert {"grant-secretAccessor-notes-db-password", "secret-notes-db-password-version"} <= after
    # an ordinary deploy never changes the retry label, so it never makes a revision of its own
    assert monitor.registered["service"]["ignore_changes"] == [f'template.labels["{REDEPLOY_LABEL}"]']
    assert "labels" not in monitor.registered["service"]["inputs"]["template"]


def test_a_revision_refused_for_its_secrets_is_tried_again_as_a_new_revision(
    scenario: Callable[..., None],
    no_waiting: tuple[float, ...],
    up_programs: list[Callable[[], None]],
    fake: Fake,
    tmp_path: Path,
) -> None:
    created = json.loads((EVENTS / "notes_create.json").read_text())["up"]
    scenario(service_fails(REFUSED), service_fails(REFUSED), created)
    said: list[str] = []
    provider = applying(project_dir(tmp_path), said)
    progress = Recorder()

    outputs = provider.apply(provider.plan(notes_flow()[1]), progress)

    assert [a[0] for a in fake.commands() if a[0] in ("preview", "up")] == ["preview", "up", "up", "up"]
    assert outputs["service"]["url"] == "https://notes-dev-abc123-uc.a.run.app"
    assert provider.deployed.image == IMAGE
    assert [line for line in said if "Cloud Run refused" in line] == [
        "Cloud Run refused the new revision: the service account cannot read its secrets yet (IAM takes minutes "
        "to apply a new grant); trying a new revision in 0s."
    ] * 2
    # the service's failure is reported, then its retry like any other step
    assert [e[:3] for e in progress.events if e[0] == "service"] == [
        ("service", "create", "started"),
        ("service", "create", "failed"),
        ("service", "create", "started"),
        ("service", "create", "failed"),
    ]
    first, *retries = (service_of(program) for program in up_programs)
    assert "labels" not in first["inputs"]["template"]
    labels = [r["inputs"]["template"]["labels"][REDEPLOY_LABEL] for r in retries]
    assert len(set(labels)) == 2 and all(r["ignore_changes"] == [] for r in retries)  # each a new template


def test_apply_gives_up_after_the_bounded_wait_and_says_what_to_do(
    scenario: Callable[..., None], no_waiting: tuple[float, ...], fake: Fake, tmp_path: Path
) -> None:
    scenario(service_fails(REFUSED))
    provider = applying(project_dir(tmp_path), [])
    plan = provider.plan(notes_flow()[1])

    with pytest.raises(PulumiOperationError) as failure:
        provider.apply(plan)

    assert [a[0] for a in fake.commands() if a[0] == "up"] == ["up"] * (len(no_waiting) + 1)
    message = " ".join(str(failure.value).split())
    assert "Permission denied on secret" in message  # Google's own words stay
    assert "roles/secretmanager.secretAccessor" in message and "Apply again in a few minutes" in message
    assert "serves its last ready revision meanwhile" in message


def test_a_revision_that_fails_for_another_reason_is_not_retried(
    scenario: Callable[..., None], no_waiting: tuple[float, ...], fake: Fake, tmp_path: Path
) -> None:
    scenario(service_fails(CRASHED))
    said: list[str] = []
    provider = applying(project_dir(tmp_path), said)
    plan = provider.plan(notes_flow()[1])

    with pytest.raises(PulumiOperationError, match="failed to start and listen"):
        provider.apply(plan)

    assert [a[0] for a in fake.commands() if a[0] == "up"] == ["up"]
    assert not [line for line in said if "Cloud Run refused" in line]
