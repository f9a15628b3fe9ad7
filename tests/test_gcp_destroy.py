"""``bfctl destroy --target gcp`` and what would stop it partway: a Cloud SQL instance with deletion
protection on (pulumi-gcp's default, and BuildFlow's) or a bucket without force_destroy, which the
provider refuses to delete after the rest of the stack is gone. Run as a user runs it, with the
stand-in `pulumi` (tests/fakes/pulumi) keeping the stack's state."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fakes import EVENTS, notes_pulumi_env
from support import bfctl_run, notes_example

pytest.importorskip("pulumi")

PASSPHRASE = "another correct horse"
IMAGE = "us-central1-docker.pkg.dev/my-project/bfctl/notes@sha256:" + "ab" * 32
INSTANCE, BUCKET = "my-project:notes-db", "gcs://notes-uploads"
INSTANCE_TYPE, BUCKET_TYPE = "gcp:sql/databaseInstance:DatabaseInstance", "gcp:storage/bucket:Bucket"


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    return notes_example(tmp_path / "notes", migrations=False)


@pytest.fixture
def env(bfctl_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return notes_pulumi_env(bfctl_env, tmp_path, PASSPHRASE)


def _urn(kind: str, name: str) -> str:
    return f"urn:pulumi:dev::notes::{kind}::{name}"


def _bucket_state() -> dict[str, Any]:
    inputs = {"forceDestroy": False, "location": "US", "name": "notes-uploads", "project": "my-project"}
    return {"type": BUCKET_TYPE, "urn": _urn(BUCKET_TYPE, BUCKET), "id": "notes-uploads", "custom": True,
            "inputs": dict(inputs), "outputs": dict(inputs)}  # fmt: skip


def guarded_destroy(tmp_path: Path, *, google_guard: bool = False) -> Path:
    """notes_destroy with the instance's deletion protection on, a bucket without force_destroy
    beside it, and the state `stack export` gives: what a stack BuildFlow's defaults made holds."""
    scenario = json.loads((EVENTS / "notes_destroy.json").read_text())
    for operation in ("preview", "destroy"):
        events = scenario[operation]["events"]
        for event in events:
            for kind in ("resourcePreEvent", "resOutputsEvent"):
                meta = event.get(kind, {}).get("metadata", {})
                if meta.get("type") == INSTANCE_TYPE:
                    meta["old"]["inputs"]["deletionProtection"] = True
                    if google_guard:
                        meta["old"]["inputs"]["settings"]["deletionProtectionEnabled"] = True
        bucket = _bucket_state()
        step = {"op": "delete", "urn": bucket["urn"], "type": BUCKET_TYPE, "old": bucket}
        events.insert(1, {"resourcePreEvent": {"metadata": step, "planning": operation == "preview"}})
        if operation == "destroy":
            events.insert(2, {"resOutputsEvent": {"metadata": copy.deepcopy(step)}})
    instance_inputs = {"deletionProtection": True, "name": "notes-db", "project": "my-project"}
    scenario["deployment"] = {
        "resources": [
            {"type": INSTANCE_TYPE, "urn": _urn(INSTANCE_TYPE, INSTANCE), "id": "notes-db", "custom": True,
             "inputs": dict(instance_inputs), "outputs": {**instance_inputs, "connectionName": "x"}},
            _bucket_state(),
        ]
    }  # fmt: skip
    path = tmp_path / "guarded_destroy.json"
    path.write_text(json.dumps(scenario))
    return path


def bfctl(cwd: Path, env: dict[str, str], *args: str, scenario: Path | None = None) -> subprocess.CompletedProcess[str]:
    return bfctl_run(list(args), cwd, {**env, "FAKE_PULUMI_SCENARIO": str(scenario)} if scenario else env)


def pulumi_commands(env: dict[str, str]) -> list[list[str]]:
    return [json.loads(line)["args"] for line in Path(env["FAKE_PULUMI_LOG"]).read_text().splitlines()]


def stack_state(env: dict[str, str]) -> dict[str, Any]:
    backend = json.loads(Path(env["FAKE_PULUMI_LOG"]).read_text().splitlines()[-1])["backend"]
    return json.loads(next(Path(backend.removeprefix("file://")).rglob("dev.json")).read_text())


def _guards(state: dict[str, Any]) -> dict[str, Any]:
    """Each resource's guards in the state, by its name."""
    keys, sides = ("deletionProtection", "forceDestroy"), ("inputs", "outputs")
    return {
        r["urn"].rsplit("::", 1)[1]: {side: {k: r[side][k] for k in keys if k in r[side]} for side in sides}
        for r in state["deployment"]["resources"]
    }


def test_destroy_names_the_guarded_resources_and_deletes_nothing_without_force(
    notes: Path, env: dict[str, str], tmp_path: Path
) -> None:
    assert bfctl(notes, env, "apply", "--target", "gcp", "--yes", "--image", IMAGE).returncode == 0

    refused = bfctl(notes, env, "destroy", "--target", "gcp", "--yes", scenario=guarded_destroy(tmp_path))

    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert f"{INSTANCE} has deletion protection on: --force turns it off first." in said
    assert f"{BUCKET} cannot be deleted while it holds objects (force_destroy is off)" in said
    assert "nothing was deleted" in said and "--force" in said and "Traceback" not in said
    ran = [c[0] for c in pulumi_commands(env)]
    assert "destroy" not in ran and ["stack", "import"] not in [c[:2] for c in pulumi_commands(env)]


def test_force_lifts_the_guards_in_the_state_then_destroys(notes: Path, env: dict[str, str], tmp_path: Path) -> None:
    assert bfctl(notes, env, "apply", "--target", "gcp", "--yes", "--image", IMAGE).returncode == 0

    destroyed = bfctl(notes, env, "destroy", "--target", "gcp", "--yes", "--force", scenario=guarded_destroy(tmp_path))

    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert "Destroy complete: 4 resource(s) deleted." in destroyed.stdout
    commands = [c[:2] if c[0] == "stack" else c[:1] for c in pulumi_commands(env)]
    lifted_at = commands.index(["stack", "import"])
    assert commands[lifted_at - 1] == ["stack", "export"] and ["destroy"] in commands[lifted_at:]
    assert ["destroy"] not in commands[:lifted_at]
    assert _guards(stack_state(env)) == {
        INSTANCE: {"inputs": {"deletionProtection": False}, "outputs": {"deletionProtection": False}},
        BUCKET: {"inputs": {"forceDestroy": True}, "outputs": {"forceDestroy": True}},
    }


def test_cloud_sqls_own_protection_is_refused_even_with_force(notes: Path, env: dict[str, str], tmp_path: Path) -> None:
    assert bfctl(notes, env, "apply", "--target", "gcp", "--yes", "--image", IMAGE).returncode == 0
    scenario = guarded_destroy(tmp_path, google_guard=True)

    refused = bfctl(notes, env, "destroy", "--target", "gcp", "--yes", "--force", scenario=scenario)

    said = refused.stdout + refused.stderr
    assert refused.returncode == 1, said
    assert f"Cloud SQL itself protects {INSTANCE}" in said and "deletion_protection_enabled=False" in said
    assert "destroy" not in [c[0] for c in pulumi_commands(env)]


def test_the_plan_says_what_destroy_will_do_with_a_protected_instance(
    notes: Path, env: dict[str, str], tmp_path: Path
) -> None:
    scenario = json.loads((EVENTS / "notes_create.json").read_text())
    for event in scenario["preview"]["events"]:
        meta = event.get("resourcePreEvent", {}).get("metadata", {})
        if meta.get("type") == INSTANCE_TYPE:
            meta["new"]["inputs"]["deletionProtection"] = True
    path = tmp_path / "protected_create.json"
    path.write_text(json.dumps(scenario))

    planned = bfctl(notes, env, "plan", "--target", "gcp", "--image", IMAGE, scenario=path)

    said = planned.stdout + planned.stderr
    assert planned.returncode == 0, said
    assert f"{INSTANCE} has deletion protection on: `bfctl destroy` names it and deletes nothing unless --force" in said
