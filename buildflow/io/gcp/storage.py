"""Cloud Storage: a bucket; as a sink, each batch of rows becomes one object in it."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Any, ClassVar

from buildflow.io.gcp.bigquery import check_project_id
from buildflow.io.gcp.cloud_sql import _fail
from buildflow.io.primitive import GCPPrimitive, PrimitiveValidationError
from buildflow.types.portable import FileFormat

# Cloud Storage: 3-63 characters (222 with dots, 63 per dot-separated part), lowercase letters,
# digits, dashes, underscores and dots, starting and ending with a letter or digit.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*[a-z0-9]")
_BUCKET_REGION = re.compile(r"[A-Za-z0-9-]+")


@dataclasses.dataclass
class GCSBucket(GCPPrimitive):
    """A Cloud Storage bucket. As a sink, ``file_path`` and ``file_format`` name the objects."""

    project_id: str
    bucket_name: str
    file_path: str | None = None
    file_format: FileFormat | None = None

    # Options (``.options(...)``); class attributes so the constructor stays BuildFlow's.
    force_destroy = False
    bucket_region = "US"

    resource_type: ClassVar[str] = "gcp.storage.Bucket"
    replace_properties: ClassVar[frozenset[str]] = frozenset({"project_id", "bucket_name", "bucket_region"})
    option_defaults: ClassVar[dict[str, Any]] = {"force_destroy": False, "bucket_region": "US"}

    def __post_init__(self) -> None:
        if isinstance(self.file_format, str):
            self.file_format = _file_format(self, self.file_format)
        self.validate()

    def primitive_id(self) -> str:
        return self.bucket_url

    @property
    def bucket_url(self) -> str:
        return f"gcs://{self.bucket_name}"

    def cloud_console_url(self) -> str:
        return f"https://console.cloud.google.com/storage/browser/{self.bucket_name}?project={self.project_id}"

    def options(self, **kwargs: Any) -> GCSBucket:
        super().options(**kwargs)
        self.validate()
        return self

    def desired_properties(self) -> dict[str, Any]:
        # file_path and file_format say how a sink names objects: nothing about the bucket.
        return {
            "project_id": self.project_id,
            "bucket_name": self.bucket_name,
            "bucket_region": self.bucket_region,
            "force_destroy": self.force_destroy,
        }

    def validate(self) -> None:
        check_project_id(self, self.project_id)
        name = self.bucket_name
        if not isinstance(name, str) or not _valid_bucket_name(name):
            _fail(
                self,
                f"bucket_name {name!r} is not a valid bucket name: 3 to 63 lowercase letters, digits, "
                "dashes, underscores or dots, starting and ending with a letter or digit",
            )
        if name.startswith("goog") or "google" in name or "g00gle" in name:
            _fail(self, f"bucket_name {name!r} is refused by Cloud Storage (no 'goog' prefix, no 'google')")
        if self.file_path is not None and (not isinstance(self.file_path, str) or not self.file_path.strip("/")):
            _fail(self, f"file_path must be an object name such as 'events/rows.json', got {self.file_path!r}")
        if self.file_format is not None and not isinstance(self.file_format, FileFormat):
            _fail(self, f"file_format must be a FileFormat, got {self.file_format!r}")
        if not isinstance(self.force_destroy, bool):
            _fail(self, f"force_destroy must be True or False, got {self.force_destroy!r}")
        if not isinstance(self.bucket_region, str) or not _BUCKET_REGION.fullmatch(self.bucket_region):
            _fail(self, f"bucket_region must be a location such as 'US' or 'us-central1', got {self.bucket_region!r}")


def _valid_bucket_name(name: str) -> bool:
    if not _BUCKET_NAME.fullmatch(name) or len(name) > 222:
        return False
    parts = name.split(".")
    if len(name) > 63 and (len(parts) == 1 or any(len(p) > 63 for p in parts)):
        return False
    if len(name) < 3 or ".." in name:
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return True
    return False


def _file_format(primitive: GCPPrimitive, value: str) -> FileFormat:
    try:
        return FileFormat(value.lower())
    except ValueError:
        formats = ", ".join(f.name for f in FileFormat)
        raise PrimitiveValidationError(
            f"{type(primitive).__name__}: file_format {value!r} is not one of {formats}"
        ) from None
