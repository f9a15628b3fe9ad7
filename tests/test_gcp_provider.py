"""The gcp target's Automation-API layer against a stand-in `pulumi` program (tests/fakes/pulumi).

The stand-in answers the calls the Automation API makes and replays engine events from
tests/fakes/events/*.json, so plans, progress, outputs, state and errors are exercised without
a Pulumi CLI or a Google account. It does not run the program: test_gcp_program.py does.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from support import cloud_sql_instance

pytest.importorskip("pulumi")

from fakes import EVENTS
from fakes.pulumi_stand_in import PASSPHRASE, Fake, Recorder

from bfctl.providers import StalePlanError, UnsupportedPrimitiveError, get_provider
from bfctl.providers.gcp import GCPProvider
from bfctl.providers.gcp import provider as gcp_provider
from bfctl.providers.gcp.errors import (
    GCPExtraMissingError,
    GCPSettingsError,
    GCPTargetError,
    PassphraseRequiredError,
    PulumiNotInstalledError,
    PulumiOperationError,
)
from bfctl.providers.gcp.events import ProgressRelay
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLTable, CloudSQLUser
from buildflow.io.local import File, LocalFileChangeStream
from buildflow.secrets import Secret
from buildflow.types.portable import FileFormat

PASSWORD = "Pl41n-Notes-Password"
INSTANCE, DATABASE, USER = "my-project:notes-db", "my-project:notes-db.notes", "my-project:notes-db/users/notes"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    return Fake(tmp_path, monkeypatch)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    directory = tmp_path / "notes"
    directory.mkdir()
    return directory


def notes(region: str = "us-central1", project_id: str = "my-project") -> list[Any]:
    instance = cloud_sql_instance("notes-db", project_id=project_id, region=region)
    return [instance, CloudSQLDatabase("notes", instance), CloudSQLUser("notes", PASSWORD, instance)]


def test_plan_runs_preview_and_maps_creates(fake: Fake, project: Path) -> None:
    fake.scenario("notes_create")
    plan = GCPProvider(project, "dev").plan(notes())

    assert [(c.resource_id, c.resource_type, c.action) for c in plan.changes] == [
        (INSTANCE, "gcp.sql.DatabaseInstance", "create"),
        (DATABASE, "gcp.sql.Database", "create"),
        (USER, "gcp.sql.User", "create"),
    ]
    instance = {p.name: p.new for p in plan.changes[0].changes}
    assert instance == {
        "database_version": "POSTGRES_15",
        "deletion_protection": False,
        "name": "notes-db",
        "project": "my-project",
        "region": "us-central1",
        "settings": {"activationPolicy": "ALWAYS", "tier": "db-f1-micro"},  # Pulumi's __defaults dropped
    }
    password = next(p for p in plan.changes[2].changes if p.name == "password")
    assert password.secret
    document = json.loads(plan.to_json())
    assert document["summary"] == {"create": 3, "update": 0, "replace": 0, "delete": 0, "noop": 0}
    assert {"name": "password", "old": None, "new": "(secret)", "secret": True, "forces_replace": False} in (
        document["resources"][2]["changes"]
    )

    version, select, init, config, preview = fake.calls()
    assert version["args"] == ["version"]
    assert select["args"] == ["stack", "select", "--stack", "dev"]
    assert init["args"] == ["stack", "init", "dev", "--secrets-provider", "passphrase"]
    assert config["args"] == [
        "config",
        "set-all",
        "--stack",
        "dev",
        "--plaintext",
        "gcp:project=my-project",
        "--plaintext",
        "gcp:region=us-central1",
    ]
    args = preview["args"]
    assert args[:2] == ["preview", "--refresh"] and args[-2:] == ["--stack", "dev"]
    assert "--event-log" in args and args[args.index("--exec-kind") + 1] == "auto.inline"
    assert any(a.startswith("--client=127.0.0.1:") for a in args)  # the inline program's language server
    assert preview["backend"] == f"file://{project / '.buildflow' / 'pulumi'}"
    assert preview["cwd"] == str(project / ".buildflow" / "pulumi" / "workspace" / "dev")
    assert all(c["passphrase_set"] for c in fake.calls())


def test_plan_maps_replace_update_delete_and_unchanged(fake: Fake, project: Path) -> None:
    fake.scenario("notes_change")
    plan = GCPProvider(project, "dev").plan(notes())

    assert [(c.resource_id, c.action) for c in plan.changes] == [
        ("my-project:notes-db.scratch", "delete"),  # gone from the flow: deletes come first
        (INSTANCE, "replace"),
        (DATABASE, "noop"),
        (USER, "update"),
    ]
    assert [(p.name, p.old, p.new, p.forces_replace) for p in plan.changes[1].changes] == [
        ("region", "us-east1", "us-central1", True),
        ("settings.tier", "db-g1-small", "db-f1-micro", False),
    ]
    assert [p.to_dict() for p in plan.changes[3].changes] == [
        {"name": "password", "old": "(secret)", "new": "(secret)", "secret": True, "forces_replace": False}
    ]
    assert plan.changes[0].resource_type == "gcp.sql.Database"
    assert plan.counts() == {"create": 0, "update": 1, "replace": 1, "delete": 1, "noop": 1}


def test_apply_streams_progress_and_records_outputs(fake: Fake, project: Path) -> None:
    fake.scenario("notes_create")
    provider = GCPProvider(project, "dev")
    progress = Recorder()

    outputs = provider.apply(provider.plan(notes()), progress)

    assert progress.events == [
        (INSTANCE, "create", "started", ""),
        (INSTANCE, "create", "done", ""),
        (DATABASE, "create", "started", ""),
        (USER, "create", "started", ""),
        (USER, "create", "done", ""),
        (DATABASE, "create", "done", ""),
    ]
    assert outputs[DATABASE] == {
        "connection_name": "my-project:us-central1:notes-db",
        "database": "notes",
        "instance": INSTANCE,
    }
    assert provider.outputs() == outputs
    up = next(a for a in fake.commands() if a[0] == "up")
    assert up[:4] == ["up", "--yes", "--skip-preview", "--refresh"]
    state = json.loads(provider.store.path.read_text())
    user = next(r for r in state["resources"] if r["resource_id"] == USER)
    assert user["properties"]["password"].startswith("SCRAM-SHA-256$")  # a verifier, never the password
    for path in (project / ".buildflow").rglob("*"):
        assert not path.is_file() or PASSWORD not in path.read_text(errors="replace"), path
        assert not path.is_file() or PASSPHRASE not in path.read_text(errors="replace"), path
    assert PASSPHRASE not in fake.log.read_text()
    # serve checks the flow against the record, without Pulumi
    before = len(fake.calls())
    assert provider.recorded_plan(notes()).has_changes is False
    assert len(fake.calls()) == before


def test_a_secrets_value_comes_from_its_variable_else_from_the_stack(
    fake: Fake, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What bfctl runs against the stack itself (migrations) logs in with the value the stack
    generated, read from its secret output; it is never written to bfctl's own files."""
    generated = "generated-by-the-stack-0123456789"
    scenario = json.loads((EVENTS / "notes_create.json").read_text())
    scenario["outputs"]["_secrets"] = {"notes-db-password": generated}
    scenario["secret_outputs"] = ["_secrets"]
    (tmp_path / "scenario.json").write_text(json.dumps(scenario))
    monkeypatch.setenv("FAKE_PULUMI_SCENARIO", str(tmp_path / "scenario.json"))
    secret = Secret("notes-db-password")
    monkeypatch.delenv(secret.env_var, raising=False)

    GCPProvider(project, "dev").apply(GCPProvider(project, "dev").plan(notes()))
    provider = GCPProvider(project, "dev")  # a later command: reads the stack's output once
    assert provider.password_of(secret) == generated
    assert provider.password_of(secret) == generated
    assert [a[:2] for a in fake.commands()].count(["stack", "output"]) == 4  # masked and shown, by apply and here
    assert provider.password_of("a literal") == "a literal"
    monkeypatch.setenv(secret.env_var, "given-at-this-machine")
    assert provider.password_of(secret) == "given-at-this-machine"
    with pytest.raises(GCPTargetError, match="secret 'other' has no value on this machine: set BUILDFLOW_SECRET_OTHER"):
        provider.password_of(Secret("other"))
    ours = [
        p for p in (project / ".buildflow").rglob("*") if p.is_file() and "pulumi" not in p.parts
    ]  # Pulumi's own state is encrypted
    assert ours and not any(generated in p.read_text(errors="replace") for p in ours)
    assert "_secrets" not in provider.outputs()


def test_apply_refuses_a_plan_made_before_the_state_changed(fake: Fake, project: Path) -> None:
    fake.scenario("notes_create")
    provider = GCPProvider(project, "dev")
    plan = provider.plan(notes())
    provider.store.save(provider.store.load())  # someone applied meanwhile

    with pytest.raises(StalePlanError, match="plan again"):
        provider.apply(plan)
    assert not any(a[0] == "up" for a in fake.commands())


def test_failed_apply_names_the_resource_and_pulumis_error(fake: Fake, project: Path) -> None:
    fake.scenario("notes_create")
    provider = GCPProvider(project, "dev")
    plan = provider.plan(notes())
    fake.scenario("notes_up_fails")
    progress = Recorder()

    with pytest.raises(PulumiOperationError) as failure:
        provider.apply(plan, progress)

    message = str(failure.value)
    assert message.startswith("`pulumi up` failed for stack `dev`:")
    assert f"{USER}: googleapi: Error 400: Invalid request: password is too weak., invalid" in message
    assert "run `bfctl plan --target gcp` to see what is left" in message
    assert (USER, "create", "failed", "googleapi: Error 400: Invalid request: password is too weak., invalid") in (
        progress.events
    )
    assert (INSTANCE, "create", "done", "") in progress.events
    assert provider.outputs() == {}  # nothing recorded for serve


def test_a_public_invoker_refused_by_domain_restricted_sharing_says_what_to_do_instead(
    fake: Fake, project: Path, tmp_path: Path
) -> None:
    fake.scenario("notes_create")
    provider = GCPProvider(project, "dev")
    plan = provider.plan(notes())
    # Google's answer when the organization's iam.allowedPolicyMemberDomains leaves out allUsers
    refused = (
        'Error applying IAM policy for cloudrunv2 service "projects/my-project/locations/us-central1/services/'
        'notes-dev": googleapi: Error 400: One or more users named in the policy do not belong to a permitted '
        "customer,  perhaps due to an organization policy., failedPrecondition"
    )
    events = (EVENTS / "notes_up_fails.json").read_text()
    events = events.replace(
        "urn:pulumi:dev::notes::gcp:sql/user:User::my-project:notes-db/users/notes",
        "urn:pulumi:dev::notes::gcp:cloudrunv2/serviceIamMember:ServiceIamMember::public-invoker",
    ).replace("googleapi: Error 400: Invalid request: password is too weak., invalid", json.dumps(refused)[1:-1])
    (tmp_path / "refused.json").write_text(events)
    fake.monkeypatch.setenv("FAKE_PULUMI_SCENARIO", str(tmp_path / "refused.json"))

    with pytest.raises(PulumiOperationError) as failure:
        provider.apply(plan, Recorder())

    message = str(failure.value)
    assert "do not belong to a permitted customer" in message  # Google's own words stay
    assert "domain-restricted sharing" in message and "iam.allowedPolicyMemberDomains" in message
    assert "--public" in message
    for alternative in ("group", "Identity-Aware Proxy", "load balancer"):
        assert alternative in message


def test_destroy_reports_each_delete_and_clears_the_record(fake: Fake, project: Path) -> None:
    fake.scenario("notes_create")
    provider = GCPProvider(project, "dev")
    provider.apply(provider.plan(notes()))
    fake.scenario("notes_destroy")
    progress = Recorder()

    preview = provider.plan([])
    done = provider.destroy(progress)

    assert [(c.resource_id, c.action) for c in preview.changes] == [
        (USER, "delete"),
        (DATABASE, "delete"),
        (INSTANCE, "delete"),
    ]
    assert [(c.resource_id, c.action) for c in done.changes] == [(c.resource_id, c.action) for c in preview.changes]
    assert [e[:3] for e in progress.events] == [
        (USER, "delete", "started"),
        (USER, "delete", "done"),
        (DATABASE, "delete", "started"),
        (DATABASE, "delete", "done"),
        (INSTANCE, "delete", "started"),
        (INSTANCE, "delete", "done"),
    ]
    assert provider.outputs() == {}


def test_missing_pulumi_cli_is_one_clear_error(
    fake: Fake, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))

    with pytest.raises(PulumiNotInstalledError) as failure:
        GCPProvider(project, "dev").plan(notes())

    assert "curl -fsSL https://get.pulumi.com | sh" in str(failure.value)
    assert "Nothing was changed" in str(failure.value)


def test_passphrase_is_asked_once_or_refused_without_a_terminal(
    fake: Fake, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.scenario("notes_create")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    with pytest.raises(PassphraseRequiredError, match="PULUMI_CONFIG_PASSPHRASE"):
        GCPProvider(project, "dev").plan(notes())
    assert [c["args"] for c in fake.calls()] == [["version"]]  # refused once the program was found

    asked: list[int] = []
    provider = GCPProvider(project, "dev", ask_passphrase=lambda: asked.append(1) or PASSPHRASE)
    provider.plan(notes())
    provider.plan(notes())
    assert asked == [1]
    assert all(c["passphrase_set"] for c in fake.calls() if c["args"] != ["version"])
    assert PASSPHRASE not in fake.log.read_text()


def test_project_and_region_come_from_flags_then_pyproject_then_primitives(fake: Fake, project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.buildflow.gcp]\nproject = "from-pyproject"\nregion = "europe-west1"\n'
    )
    settings = GCPProvider(project, "dev", region="asia-east1").settings(notes())
    assert (settings.project, settings.region) == ("from-pyproject", "asia-east1")
    (project / "pyproject.toml").write_text('[project]\nname = "notes-app"\n')
    settings = GCPProvider(project, "dev").settings(notes())
    assert (settings.project, settings.region, settings.pulumi_project) == ("my-project", "us-central1", "notes-app")

    with pytest.raises(GCPSettingsError, match="several values of region"):
        GCPProvider(project, "dev").settings(notes() + notes(region="us-east1", project_id="my-project")[:1])


def test_missing_region_is_an_error_before_pulumi_starts(
    fake: Fake, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.scenario("notes_create")
    resolve = gcp_provider.resolve
    monkeypatch.setattr(gcp_provider, "resolve", lambda *a, **k: dataclasses.replace(resolve(*a, **k), region=None))

    with pytest.raises(GCPSettingsError, match=r"no Google Cloud region .* --gcp-region"):
        GCPProvider(project, "dev").plan(notes())
    assert fake.calls() == []


def test_backend_url_from_the_environment(
    fake: Fake, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.scenario("notes_create")
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path / 'team-state'}")
    GCPProvider(project, "dev").plan(notes())
    assert {c["backend"] for c in fake.calls()[1:]} == {f"file://{tmp_path / 'team-state'}"}


def test_missing_extra_gives_the_install_command(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = gcp_provider.importlib.util.find_spec
    monkeypatch.setattr(
        gcp_provider.importlib.util, "find_spec", lambda name, *a: None if name.startswith("pulumi") else real(name, *a)
    )

    with pytest.raises(GCPExtraMissingError) as failure:
        get_provider("gcp", project, "dev")
    assert "pip install 'bfctl[gcp]'" in str(failure.value)
    assert "pulumi, pulumi_gcp" in str(failure.value)


def test_a_primitive_the_target_cannot_make_is_refused_with_the_reason(project: Path) -> None:
    instance, database, _ = notes()
    with pytest.raises(UnsupportedPrimitiveError, match="no resource for a table inside a Cloud SQL database"):
        GCPProvider(project, "dev").declared([instance, database, CloudSQLTable(database, "events")])


def test_local_only_primitives_are_refused_for_good_with_what_to_use_on_gcp(project: Path) -> None:
    with pytest.raises(UnsupportedPrimitiveError) as sink:
        GCPProvider(project, "dev").declared([File("out/rows.csv", FileFormat.CSV)])
    message = str(sink.value)
    assert "never" in message and "yet" not in message
    assert "memory" in message and "scales in" in message  # why: Cloud Run's disk is not kept
    assert "GCSBucket" in message and "Bucket" in message

    with pytest.raises(UnsupportedPrimitiveError) as source:
        GCPProvider(project, "dev").declared([LocalFileChangeStream(str(project / "drops"))])
    assert "never" in str(source.value) and "GCSFileChangeStream" in str(source.value)


def test_a_missing_project_and_region_are_asked_for_in_one_message(
    fake: Fake, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.scenario("notes_create")
    resolve = gcp_provider.resolve
    monkeypatch.setattr(
        gcp_provider, "resolve", lambda *a, **k: dataclasses.replace(resolve(*a, **k), project=None, region=None)
    )

    with pytest.raises(GCPSettingsError) as failure:
        GCPProvider(project, "dev").plan(notes())
    message = str(failure.value)
    assert "no Google Cloud project or region" in message
    assert "--gcp-project" in message and "--gcp-region" in message
    assert fake.calls() == []


def test_replace_is_done_after_both_of_its_steps() -> None:
    from pulumi.automation import EngineEvent

    urn = "urn:pulumi:dev::notes::gcp:sql/databaseInstance:DatabaseInstance::" + INSTANCE
    progress = Recorder()
    relay = ProgressRelay(progress)

    def step(kind: str, op: str) -> None:
        relay(EngineEvent.from_json({kind: {"metadata": {"op": op, "urn": urn, "type": urn.split("::")[2]}}}))

    for op in ("delete-replaced", "replace", "create-replacement"):  # delete before replace
        step("resourcePreEvent", op)
        step("resOutputsEvent", op)
        if op != "create-replacement":
            assert [e[2] for e in progress.events] == ["started"]
    assert progress.events == [(INSTANCE, "replace", "started", ""), (INSTANCE, "replace", "done", "")]


def test_plan_lists_the_deployments_resources_after_the_primitives(fake: Fake, project: Path) -> None:
    fake.scenario("notes_deploy")
    plan = GCPProvider(project, "dev").plan(notes())

    assert [(c.resource_id, c.resource_type, c.action) for c in plan.changes] == [
        (INSTANCE, "gcp.sql.DatabaseInstance", "create"),
        (DATABASE, "gcp.sql.Database", "create"),
        (USER, "gcp.sql.User", "create"),
        ("api-run", "gcp.projects.Service", "noop"),
        ("service-account", "gcp.serviceaccount.Account", "create"),
        ("grant-cloudsql.client-my-project-notes-db", "gcp.projects.IAMMember", "create"),
        ("secret-notes-db-password-version", "gcp.secretmanager.SecretVersion", "create"),
        ("service", "gcp.cloudrunv2.Service", "update"),
    ]
    by_id = {c.resource_id: c for c in plan.changes}
    assert {p.name: p.new for p in by_id["grant-cloudsql.client-my-project-notes-db"].changes}["role"] == (
        "roles/cloudsql.client"
    )
    assert [p.to_dict() for p in by_id["secret-notes-db-password-version"].changes if p.name == "secret_data"] == [
        {"name": "secret_data", "old": None, "new": "(secret)", "secret": True, "forces_replace": False}
    ]
    # A new image is an update of the service (a new revision), shown by digest.
    (image,) = by_id["service"].changes
    assert image.name == "template.containers[0].image"
    assert (image.old.rsplit(":", 1)[1], image.new.rsplit(":", 1)[1]) == ("ab" * 32, "cd" * 32)
    assert not image.forces_replace
