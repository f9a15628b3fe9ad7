"""``bfctl plan|apply|destroy --target gcp`` as a user runs them, with the stand-in `pulumi`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from fakes import EVENTS, notes_pulumi_env
from support import bfctl_run, notes_example

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "s3cret"  # the notes example's
PASSPHRASE = "another correct horse"
IMAGE = "us-central1-docker.pkg.dev/my-project/bfctl/notes@sha256:" + "ab" * 32


@pytest.fixture
def migrated_notes(tmp_path: Path) -> Path:
    return notes_example(tmp_path / "notes")


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    """The notes example without its migrations, which need the database itself (applying them on
    gcp is tested through a stand-in of the Cloud SQL connector's side, test_gcp_connector_e2e)."""
    return notes_example(tmp_path / "notes", migrations=False)


@pytest.fixture
def env(bfctl_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return notes_pulumi_env(bfctl_env, tmp_path, PASSPHRASE)


def pulumi_calls(env: dict[str, str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(env["FAKE_PULUMI_LOG"]).read_text().splitlines()]


def bfctl(cwd: Path, env: dict[str, str], *args: str, scenario: str | None = None) -> subprocess.CompletedProcess[str]:
    if scenario:
        env = {**env, "FAKE_PULUMI_SCENARIO": str(EVENTS / f"{scenario}.json")}
    return bfctl_run(list(args), cwd, env)


def test_plan_renders_the_preview(notes: Path, env: dict[str, str]) -> None:
    result = bfctl(notes, env, "plan", "--target", "gcp", "--detailed-exitcode")

    assert result.returncode == 2, result.stderr  # changes
    assert result.stdout.splitlines() == [
        "Plan for stack `dev` on the gcp target:",
        "  +   create    gcp.sql.DatabaseInstance  my-project:notes-db",
        "        database_version: POSTGRES_15",
        "        deletion_protection: False",
        "        name: notes-db",
        "        project: my-project",
        "        region: us-central1",
        "        settings: {'activationPolicy': 'ALWAYS', 'tier': 'db-f1-micro'}",
        "  +   create    gcp.sql.Database  my-project:notes-db.notes",
        "        deletion_policy: ABANDON",
        "        instance: notes-db",
        "        name: notes",
        "        project: my-project",
        "  +   create    gcp.sql.User  my-project:notes-db/users/notes",
        "        deletion_policy: ABANDON",
        "        instance: notes-db",
        "        name: notes",
        "        password: (secret)",
        "        project: my-project",
        "Plan: 3 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged.",
    ]
    assert PASSWORD not in result.stdout + result.stderr
    # What the stack has deployed (its outputs, masked then shown), then one preview and nothing
    # else: no update, no plugin install, no retried or repeated operation.
    calls = [json.loads(line)["args"] for line in Path(env["FAKE_PULUMI_LOG"]).read_text().splitlines()]
    assert [args[:2] for args in calls] == [
        ["version"],
        ["stack", "select"],
        ["stack", "init"],
        ["config", "set-all"],
        ["stack", "output"],
        ["stack", "output"],
        ["version"],
        ["stack", "select"],
        ["config", "set-all"],
        ["preview", "--refresh"],
    ]


def test_plan_json_has_the_local_targets_schema(notes: Path, env: dict[str, str]) -> None:
    gcp = json.loads(bfctl(notes, env, "plan", "--target", "gcp", "--json", scenario="notes_change").stdout)
    local = json.loads(bfctl(notes, env, "plan", "--target", "local", "--json").stdout)

    assert gcp.keys() == local.keys() and gcp["summary"].keys() == local["summary"].keys()
    assert {k for r in gcp["resources"] for k in r} <= {k for r in local["resources"] for k in r} | {"reason"}
    assert {k for r in gcp["resources"] for c in r["changes"] for k in c} == {
        k for r in local["resources"] for c in r["changes"] for k in c
    }
    user = next(r for r in gcp["resources"] if r["resource_id"] == "my-project:notes-db/users/notes")
    assert user["action"] == "update" and user["changes"][0]["new"] == "(secret)"


def test_apply_then_destroy(notes: Path, env: dict[str, str]) -> None:
    applied = bfctl(notes, env, "apply", "--target", "gcp", "--yes", "--image", IMAGE)

    assert applied.returncode == 0, applied.stderr
    lines = applied.stdout.splitlines()
    progress = [line.split(" (")[0] for line in lines if line.startswith(("  … ", "  ✓ "))]
    assert progress == [
        "  … create   my-project:notes-db",
        "  ✓ created my-project:notes-db",
        "  … create   my-project:notes-db.notes",
        "  … create   my-project:notes-db/users/notes",
        "  ✓ created my-project:notes-db/users/notes",
        "  ✓ created my-project:notes-db.notes",
    ]
    assert "Apply complete: 3 resource(s) changed." in lines
    assert "    connection_name = my-project:us-central1:notes-db" in lines
    assert "    url = https://notes-dev-abc123-uc.a.run.app" in lines
    # one `up`: an image given with --image needs no repository made first
    assert [c["args"][0] for c in pulumi_calls(env) if c["args"][0] in ("preview", "up")] == ["preview", "up"]
    deployed = json.loads((notes / ".buildflow" / "state" / "gcp-dev.deployed.json").read_text())
    assert deployed["image"] == IMAGE and deployed["service"]["url"] == "https://notes-dev-abc123-uc.a.run.app"

    destroyed = bfctl(notes, env, "destroy", "--target", "gcp", "--yes", scenario="notes_destroy")

    assert destroyed.returncode == 0, destroyed.stderr
    assert "Plan: 0 to create, 0 to update, 0 to replace, 3 to delete, 0 unchanged." in destroyed.stdout
    assert "Destroy complete: 3 resource(s) deleted." in destroyed.stdout
    assert not (notes / ".buildflow" / "locks" / "gcp-dev.lock").exists()
    assert not (notes / ".buildflow" / "state" / "gcp-dev.deployed.json").exists()


def test_failed_apply_is_a_message_not_a_traceback(notes: Path, env: dict[str, str]) -> None:
    plan_env = {**env, "FAKE_PULUMI_SCENARIO": str(EVENTS / "notes_create.json")}
    # the stand-in answers `preview` from one scenario and `up` from another: merge them
    merged = json.loads((EVENTS / "notes_create.json").read_text())
    merged["up"] = json.loads((EVENTS / "notes_up_fails.json").read_text())["up"]
    scenario = notes.parent / "fails.json"
    scenario.write_text(json.dumps(merged))

    result = bfctl(notes, {**plan_env, "FAKE_PULUMI_SCENARIO": str(scenario)}, "apply", "--target", "gcp", "--yes")

    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "\nError: `pulumi up` failed for stack `dev`:\n" in result.stderr
    assert (
        "my-project:notes-db/users/notes: googleapi: Error 400: Invalid request: password is too weak." in result.stderr
    )
    assert "  ✗ create my-project:notes-db/users/notes failed" in result.stdout


def test_missing_pulumi_cli(notes: Path, env: dict[str, str], tmp_path: Path) -> None:
    result = bfctl(notes, {**env, "PATH": str(tmp_path / "nothing-here")}, "plan", "--target", "gcp")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == textwrap.dedent(
        """\
        Error: The gcp target runs Pulumi, and the Pulumi CLI (the `pulumi` program) is not on PATH. It is a \
separate program from the Python packages: install it with `curl -fsSL https://get.pulumi.com | sh` (Linux and \
macOS) or `brew install pulumi/tap/pulumi`, or see https://www.pulumi.com/docs/iac/download-install/; then open \
a new shell (the installer adds ~/.pulumi/bin to PATH) and run this command again. Nothing was changed.
        """
    )


def test_missing_passphrase_outside_a_terminal(notes: Path, env: dict[str, str]) -> None:
    result = bfctl(notes, {k: v for k, v in env.items() if k != "PULUMI_CONFIG_PASSPHRASE"}, "plan", "--target", "gcp")

    assert result.returncode == 1
    assert result.stderr.startswith("Error: Pulumi encrypts the stack's secrets")
    assert "Traceback" not in result.stderr


def test_local_target_and_help_never_import_pulumi(notes: Path, env: dict[str, str]) -> None:
    probe = textwrap.dedent(
        """
        import sys
        import bfctl.cli
        for argv in (["bfctl", "--help"], ["bfctl", "plan", "--target", "local"], ["bfctl", "plan", "--help"]):
            sys.argv = argv
            try:
                bfctl.cli.main()
            except SystemExit as exit:
                assert exit.code in (0, None), (argv, exit.code)
        print("RESULT", sorted(m for m in sys.modules if m.split(".")[0] in ("pulumi", "pulumi_gcp", "google")))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=notes, env=env, capture_output=True, text=True, check=False, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert "RESULT []" in result.stdout
    assert "--gcp-project" in result.stdout and "--gcp-region" in result.stdout


def test_an_api_not_enabled_is_named_with_the_command_that_enables_it(notes: Path, env: dict[str, str]) -> None:
    merged = json.loads((EVENTS / "notes_create.json").read_text())
    failing = (
        (EVENTS / "notes_up_fails.json")
        .read_text()
        .replace(
            "Invalid request: password is too weak.",
            "Cloud SQL Admin API has not been used in project 123 before or it is disabled. Reason: SERVICE_DISABLED",
        )
    )
    merged["up"] = json.loads(failing)["up"]
    scenario = notes.parent / "disabled.json"
    scenario.write_text(json.dumps(merged))

    result = bfctl(notes, {**env, "FAKE_PULUMI_SCENARIO": str(scenario)}, "apply", "--target", "gcp", "--yes")

    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "SERVICE_DISABLED" in result.stderr
    enable = (
        "`gcloud services enable sqladmin.googleapis.com run.googleapis.com artifactregistry.googleapis.com "
        "cloudbuild.googleapis.com iam.googleapis.com cloudtrace.googleapis.com telemetry.googleapis.com "
        "cloudresourcemanager.googleapis.com --project my-project`"
    )
    said = " ".join(result.stderr.split())
    assert enable in said and "then set manage_apis = false under [tool.buildflow.gcp]" in said

    pyproject = notes / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n[tool.buildflow.gcp]\nmanage_apis = false\n")
    result = bfctl(notes, {**env, "FAKE_PULUMI_SCENARIO": str(scenario)}, "apply", "--target", "gcp", "--yes")
    said = " ".join(result.stderr.split())
    assert result.returncode == 1 and enable in said and "manage_apis" not in said

    pyproject.write_text(pyproject.read_text().replace("manage_apis = false", 'manage_apis = "no"'))
    result = bfctl(notes, env, "plan", "--target", "gcp")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "manage_apis in [tool.buildflow.gcp] must be true or false, not 'no'" in result.stderr


def test_migrations_that_cannot_reach_the_database_stop_apply_before_the_new_code(
    migrated_notes: Path, env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "no-such-key.json")}
    planned = bfctl(migrated_notes, env, "plan", "--target", "gcp")
    assert planned.returncode == 0, planned.stderr
    assert "(1 pending: 0001 (create the note table))" in planned.stdout  # nothing made yet: all pending

    Path(env["FAKE_PULUMI_LOG"]).unlink()
    applied = bfctl(migrated_notes, env, "apply", "--target", "gcp", "--yes", "--image", IMAGE)

    assert applied.returncode == 1 and "Traceback" not in applied.stderr
    assert "Error: could not reach my-project:notes-db.notes to run its migrations:" in applied.stderr
    assert "no-such-key.json was not found" in applied.stderr
    assert "the service was not updated" in applied.stderr
    # the data resources were applied; the service, with the new image, was not
    assert [c["args"][0] for c in pulumi_calls(env) if c["args"][0] in ("preview", "up")] == ["preview", "up"]
    deployed = json.loads((migrated_notes / ".buildflow" / "state" / "gcp-dev.deployed.json").read_text())
    assert deployed["image"] is None

    planned = bfctl(migrated_notes, env, "plan", "--target", "gcp")  # made now: read, and said why it cannot be
    assert "the database cannot be read before apply (File " in planned.stdout
    assert "revision: (unknown) → 0001" in planned.stdout
