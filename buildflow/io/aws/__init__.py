"""AWS primitives (BuildFlow 0.3 import path ``buildflow.io.aws``): declared so BuildFlow flows
import, refused by every target and by the runtime (bfctl does not support AWS)."""

from buildflow.io.aws.s3 import S3Bucket
from buildflow.io.aws.s3_file_change_stream import S3FileChangeStream
from buildflow.io.aws.sqs import SQSQueue

__all__ = ["S3Bucket", "S3FileChangeStream", "SQSQueue"]
