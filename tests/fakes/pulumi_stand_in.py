"""The stand-in ``pulumi`` (tests/fakes/pulumi) as the provider tests drive it: its scenario, the
calls it received, and the progress the provider reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fakes import EVENTS, pulumi_path

PASSPHRASE = "correct horse battery staple"


class Fake:
    """The stand-in's scenario and the calls it received."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log = tmp_path / "pulumi-calls.jsonl"
        self.monkeypatch = monkeypatch
        monkeypatch.setenv("PATH", pulumi_path(tmp_path / "bin"))
        monkeypatch.setenv("FAKE_PULUMI_LOG", str(self.log))
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE)
        for var in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE_FILE"):
            monkeypatch.delenv(var, raising=False)

    def scenario(self, name: str) -> None:
        self.monkeypatch.setenv("FAKE_PULUMI_SCENARIO", str(EVENTS / f"{name}.json"))

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def commands(self) -> list[list[str]]:
        return [c["args"] for c in self.calls()]


class Recorder:
    """The progress a provider reports: (resource, action, status, message) in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def __call__(self, resource_id: str, action: str, status: str, message: str = "") -> None:
        self.events.append((resource_id, action, status, message))
