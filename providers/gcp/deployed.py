"""What a gcp stack has deployed: its image (by digest) and tag, its outputs, its repository.

The truth is the stack's own outputs, kept by the Pulumi backend: plan and apply read them
before declaring anything, so a fresh checkout, or CI sharing the backend, keeps the live
service on the image it runs instead of declaring no service (which Pulumi would delete).
The file beside bfctl's state of the stack is a cache of them, for what runs without Pulumi
(``serve``, the outputs shown when nothing changed). Never a secret in it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bfctl.providers.state import write_atomic

#: The stack outputs the program exports for the deployment: its resources, and the service once made.
DEPLOYMENT_OUTPUT, SERVICE_OUTPUT = "deployment", "service"
#: The key of the deployment output naming the builds' sources bucket.
BUILD_SOURCES = "build_sources"


def ready_to_push(outputs: Mapping[str, Any]) -> bool:
    """Whether the stack has what a push needs: the image repository, and the bucket and account a
    remote build uses (a stack applied before they existed gets them in a first ``up``)."""
    deployment = outputs.get(DEPLOYMENT_OUTPUT)
    return isinstance(deployment, Mapping) and BUILD_SOURCES in deployment


class DeployedRecord:
    """The image the service runs (by digest) and its tag, the service's outputs, the repository."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            data = {}
        self.has_repository: bool = bool(data.get("has_repository"))
        self.image: str | None = data.get("image")
        self.tag: str | None = data.get("tag")
        self.service: Mapping[str, Any] | None = data.get("service")

    def save(
        self, *, has_repository: bool, image: str | None, tag: str | None, service: Mapping[str, Any] | None
    ) -> None:
        self.has_repository, self.image, self.tag, self.service = has_repository, image, tag, service
        record = {"has_repository": has_repository, "image": image, "tag": tag, "service": service}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(record, indent=2).encode())

    def take(self, outputs: Mapping[str, Any]) -> None:
        """Take what the stack's (non-secret) outputs say is deployed, and cache it."""
        found = outputs.get(SERVICE_OUTPUT)
        service = dict(found) if isinstance(found, Mapping) else None
        self.save(
            has_repository=ready_to_push(outputs),
            image=service.get("image") if service else None,
            tag=service.get("tag") if service else None,
            service=service,
        )

    def forget(self) -> None:
        """After a destroy: nothing is deployed."""
        self.path.unlink(missing_ok=True)
        self.has_repository, self.image, self.tag, self.service = False, None, None, None
