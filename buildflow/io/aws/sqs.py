"""``SQSQueue`` (BuildFlow's ``buildflow.io.aws.sqs``): declared, not supported by bfctl."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from buildflow.io.aws.s3 import AWS_INSTEAD
from buildflow.io.primitive import AWSPrimitive
from buildflow.io.unsupported import NotSupportedByBfctl


@dataclasses.dataclass
class SQSQueue(NotSupportedByBfctl, AWSPrimitive):
    """An SQS queue, with BuildFlow's constructor."""

    queue_name: str
    aws_account_id: str | None = None
    aws_region: str | None = None

    family: ClassVar[str] = "AWS"
    instead: ClassVar[str] = AWS_INSTEAD
    resource_type: ClassVar[str] = "aws.sqs.Queue"

    def primitive_id(self) -> str:
        return f"sqs:{self.queue_name}"

    def desired_properties(self) -> dict[str, Any]:
        return {"queue_name": self.queue_name, "aws_account_id": self.aws_account_id, "aws_region": self.aws_region}
