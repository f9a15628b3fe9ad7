"""What the last apply of a gcp stack deployed, kept beside bfctl's state of the stack.

The next plan compares the code's image tag with it ("unchanged code, no new revision"), the
next apply knows whether the image repository exists yet, and ``--no-deploy`` keeps the
service on the image it runs. Pulumi's state stays the truth about the cloud; this is bfctl's
note of what it asked for. Never a secret in it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from providers.state import write_atomic


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

    def forget(self) -> None:
        """After a destroy: nothing is deployed."""
        self.path.unlink(missing_ok=True)
        self.has_repository, self.image, self.tag, self.service = False, None, None, None
