"""``S3Bucket`` (BuildFlow's ``buildflow.io.aws.s3``): declared, not supported by bfctl."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from buildflow.io.primitive import AWSPrimitive
from buildflow.io.unsupported import NotSupportedByBfctl
from buildflow.types.portable import FileFormat

AWS_INSTEAD = (
    "use the portable primitives of buildflow.io.portable (Bucket, Queue, Topic), which work on the local "
    "and gcp targets, or their gcp classes in buildflow.io.gcp"
)


@dataclasses.dataclass
class S3Bucket(NotSupportedByBfctl, AWSPrimitive):
    """An S3 bucket, with BuildFlow's constructor."""

    bucket_name: str
    file_path: str | None = None
    file_format: FileFormat | None = None
    aws_region: str | None = None

    force_destroy = False

    family: ClassVar[str] = "AWS"
    instead: ClassVar[str] = AWS_INSTEAD
    resource_type: ClassVar[str] = "aws.s3.Bucket"
    option_defaults: ClassVar[dict[str, Any]] = {"force_destroy": False}

    @property
    def bucket_url(self) -> str:
        return f"s3://{self.bucket_name}"

    def primitive_id(self) -> str:
        return self.bucket_url

    def desired_properties(self) -> dict[str, Any]:
        return {"bucket_name": self.bucket_name, "aws_region": self.aws_region, "force_destroy": self.force_destroy}
