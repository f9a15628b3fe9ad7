"""Primitives each target makes with its own service (``buildflow.io.portable``); see
``providers.portables`` for what each becomes on the local and gcp targets."""

from buildflow.io.portable.bucket import Bucket
from buildflow.io.portable.file_change_stream import FileChangeStream
from buildflow.io.portable.queue import Queue
from buildflow.io.portable.table import AnalysisTable
from buildflow.io.portable.topic import Topic

__all__ = ["AnalysisTable", "Bucket", "FileChangeStream", "Queue", "Topic"]
