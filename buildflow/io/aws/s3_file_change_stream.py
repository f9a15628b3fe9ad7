"""``S3FileChangeStream`` (BuildFlow's ``buildflow.io.aws.s3_file_change_stream``): declared,
not supported by bfctl."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, ClassVar

from buildflow.io.aws.s3 import AWS_INSTEAD, S3Bucket
from buildflow.io.primitive import AWSPrimitive
from buildflow.io.unsupported import NotSupportedByBfctl
from buildflow.types.aws import S3ChangeStreamEventType


@dataclasses.dataclass
class S3FileChangeStream(NotSupportedByBfctl, AWSPrimitive):
    """The notifications of an S3 bucket, with BuildFlow's constructor."""

    s3_bucket: S3Bucket
    event_types: Iterable[S3ChangeStreamEventType] = (S3ChangeStreamEventType.OBJECT_CREATED_ALL,)
    filter_test_events: bool = True

    family: ClassVar[str] = "AWS"
    instead: ClassVar[str] = AWS_INSTEAD
    resource_type: ClassVar[str] = "aws.s3.BucketNotification"

    def __post_init__(self) -> None:
        self.event_types = tuple(self.event_types)

    def primitive_id(self) -> str:
        return f"{self.s3_bucket.bucket_url}/notifications"

    def desired_properties(self) -> dict[str, Any]:
        return {"bucket": self.s3_bucket.bucket_name, "event_types": sorted(e.name for e in self.event_types)}
