"""Primitives on this machine (BuildFlow 0.3 import path ``buildflow.io.local``)."""

from buildflow.io.local.empty import Empty
from buildflow.io.local.file import File
from buildflow.io.local.file_change_stream import LocalFileChangeStream
from buildflow.io.local.pulse import Pulse

__all__ = ["Empty", "File", "LocalFileChangeStream", "Pulse"]
