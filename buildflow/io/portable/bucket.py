"""``Bucket``: an object store (BuildFlow's ``buildflow.io.portable.bucket``)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from buildflow.io.gcp.storage import GCSBucket
from buildflow.io.portable.checks import NAME_CHECK_PROJECT, check_as
from buildflow.io.primitive import PortablePrimitive
from buildflow.types.portable import FileFormat


@dataclasses.dataclass
class Bucket(PortablePrimitive):
    """A Cloud Storage bucket on gcp, a folder standing in for one locally. As a sink,
    ``file_path`` and ``file_format`` name the objects, as for ``GCSBucket``."""

    bucket_name: str
    file_path: str | None = None
    file_format: FileFormat | None = None

    # Options (``.options(...)``), GCSBucket's; no region means the target's (gcp: the stack's).
    force_destroy = False
    bucket_region: str | None = dataclasses.field(default=None, init=False)

    resource_type: ClassVar[str] = "portable.Bucket"
    replace_properties: ClassVar[frozenset[str]] = frozenset({"bucket_name", "bucket_region"})
    option_defaults: ClassVar[dict[str, Any]] = {"force_destroy": False, "bucket_region": None}

    def __post_init__(self) -> None:
        self.validate()
        if isinstance(self.file_format, str):  # valid: GCSBucket's checks accepted it
            self.file_format = FileFormat(self.file_format.lower())

    def options(self, **kwargs: Any) -> Bucket:
        super().options(**kwargs)
        self.validate()
        return self

    def primitive_id(self) -> str:
        return f"bucket:{self.bucket_name}"

    def desired_properties(self) -> dict[str, Any]:
        return {
            "bucket_name": self.bucket_name,
            "bucket_region": self.bucket_region,
            "force_destroy": self.force_destroy,
        }

    def to_gcs(self, project_id: str, region: str = GCSBucket.bucket_region) -> GCSBucket:
        """The Cloud Storage bucket this stands for in ``project_id``, located in its own
        ``bucket_region`` or else in ``region``."""
        bucket = GCSBucket(project_id, self.bucket_name, self.file_path, self.file_format)
        return bucket.options(force_destroy=self.force_destroy, bucket_region=self.bucket_region or region)

    def validate(self) -> None:
        check_as(self, lambda: self.to_gcs(NAME_CHECK_PROJECT))
