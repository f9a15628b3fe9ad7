"""What a gcp stack has deployed is read from the stack itself, not from the checkout.

A fresh clone, or CI sharing the Pulumi backend, has no ``.buildflow/state``: plan and apply
must still declare the live service on the image it runs, or Pulumi deletes it. The stand-in
``pulumi`` (tests/fakes/pulumi) keeps the stack's outputs in the file backend; the programs the
Automation API is given are run under Pulumi's mocks to see what they declare.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("pulumi_gcp")

from fakes import EVENTS
from fakes.pulumi_stand_in import Fake
from flows.notes_service import IMAGE, deploy, notes_flow
from gcp_mocks import mocked, run_inline, run_program
from pulumi import automation as auto

from bfctl.providers.base import DeployRequest
from bfctl.providers.gcp import GCPProvider

TAG = "b5f0c2d9e8a7"
URL = "https://notes-dev-abc123-uc.a.run.app"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    """The stand-in with a backend shared by every checkout (as CI and teammates share one)."""
    stand_in = Fake(tmp_path, monkeypatch)
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path / 'shared-backend'}")
    scenario = json.loads((EVENTS / "notes_create.json").read_text())
    scenario["outputs"]["service"]["tag"] = TAG
    scenario["outputs"]["_secrets"] = {"notes-db-password": "generated-by-the-stack-0123456789"}
    scenario["secret_outputs"] = ["_secrets"]
    (tmp_path / "deployed.json").write_text(json.dumps(scenario))
    monkeypatch.setenv("FAKE_PULUMI_SCENARIO", str(tmp_path / "deployed.json"))
    return stand_in


@pytest.fixture
def programs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Callable[[], None]]]:
    """Each inline program the Automation API hands the engine, by operation."""
    given: list[tuple[str, Callable[[], None]]] = []
    for operation in ("preview", "up"):
        real = getattr(auto.Stack, operation)

        def spy(self: auto.Stack, *args: Any, _real: Any = real, _op: str = operation, **kwargs: Any) -> Any:
            given.append((_op, self.workspace.program))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(auto.Stack, operation, spy)
    return given


def service_declared_by(program: Callable[[], None]) -> tuple[str | None, dict[str, Any]]:
    """The image of the service ``program`` declares (None: no service, so Pulumi deletes it), and its exports."""
    with mocked() as monitor:
        exports = run_inline(program)
    service = monitor.registered.get("service")
    return (service["inputs"]["template"]["containers"][0]["image"] if service else None), exports


def checkout(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "main.py").write_text("# the flow\n")
    (directory / "pyproject.toml").write_text('[project]\nname = "notes"\n')  # one Pulumi project, one stack
    return directory


def test_a_fresh_checkout_keeps_the_live_service_on_its_image(
    fake: Fake, programs: list[tuple[str, Callable[[], None]]], tmp_path: Path
) -> None:
    flow, primitives = notes_flow()
    first = checkout(tmp_path, "laptop")
    deployed = GCPProvider(first, "dev", deploy=DeployRequest(flow, "main:app", image=IMAGE))
    deployed.apply(deployed.plan(primitives))
    assert deployed.deployed.image == IMAGE

    fresh = checkout(tmp_path, "ci")  # a clone: no .buildflow, the same backend
    shutil.rmtree(fresh / ".buildflow", ignore_errors=True)
    programs.clear()
    provider = GCPProvider(fresh, "dev", deploy=DeployRequest(flow, "main:app", deploy=False))
    plan = provider.plan(primitives)
    provider.apply(plan)

    assert [op for op, _ in programs] == ["preview", "up"]
    for _, program in programs:  # neither the plan nor `apply --no-deploy` deletes or changes the service
        image, exports = service_declared_by(program)
        assert image == IMAGE
        assert exports["service"]["tag"] == TAG
    assert (provider.deployed.image, provider.deployed.tag) == (IMAGE, TAG)
    assert provider.outputs()["service"]["url"] == URL
    # the checkout's file is a cache of the stack's outputs, for what runs without Pulumi (serve)
    cached = json.loads(provider.deployed.path.read_text())
    assert (cached["image"], cached["tag"], cached["has_repository"]) == (IMAGE, TAG, True)


def test_the_stack_wins_over_a_stale_record_in_the_checkout(
    fake: Fake, programs: list[tuple[str, Callable[[], None]]], tmp_path: Path
) -> None:
    """Another machine deployed since this checkout's last apply: keep what runs, not the older image."""
    flow, primitives = notes_flow()
    project = checkout(tmp_path, "laptop")
    provider = GCPProvider(project, "dev", deploy=DeployRequest(flow, "main:app", image=IMAGE))
    provider.apply(provider.plan(primitives))
    older = IMAGE.replace("ab" * 32, "00" * 32)
    provider.deployed.save(has_repository=True, image=older, tag="older", service={"url": URL, "image": older})

    programs.clear()
    again = GCPProvider(project, "dev", deploy=DeployRequest(flow, "main:app", deploy=False))
    again.plan(primitives)

    ((_, program),) = programs
    assert service_declared_by(program)[0] == IMAGE
    assert json.loads(again.deployed.path.read_text())["image"] == IMAGE


def test_a_stack_that_never_deployed_declares_no_service_yet(
    fake: Fake, programs: list[tuple[str, Callable[[], None]]], tmp_path: Path
) -> None:
    flow, primitives = notes_flow()
    provider = GCPProvider(checkout(tmp_path, "new"), "dev", deploy=DeployRequest(flow, "main:app", deploy=False))
    provider.plan(primitives)

    ((_, program),) = programs
    assert service_declared_by(program)[0] is None
    assert (provider.deployed.image, provider.deployed.has_repository) == (None, False)


def test_the_service_exports_the_tag_its_image_was_built_as() -> None:
    flow, primitives = notes_flow()
    with mocked():
        built = run_program(primitives, project="my-project", deployment=deploy(flow, primitives), image=IMAGE, tag=TAG)
    with mocked():
        given = run_program(primitives, project="my-project", deployment=deploy(flow, primitives), image=IMAGE)

    assert (built["service"]["image"], built["service"]["tag"]) == (IMAGE, TAG)
    assert "tag" not in given["service"]  # an image given with --image was not built by bfctl
