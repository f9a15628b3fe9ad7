"""Primitives on this machine (BuildFlow 0.3 import path ``buildflow.io.local``)."""

from buildflow.io.local.empty import Empty
from buildflow.io.local.file import File

__all__ = ["Empty", "File"]
