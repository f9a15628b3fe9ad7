"""Source readers: where consumers' messages come from, one reader per pull loop.

``reader_for`` picks the reader from what the target applied, as ``runtime.sinks`` picks
writers: a source primitive's outputs carry an ``engine`` (``buildflow.storage.engines.Engine``)
and the rest is what that engine's reader needs. ``READERS`` names each engine's
``ReaderFactory``, imported only when a source uses it.
"""

from __future__ import annotations

from runtime.sources.base import Delivery, ReaderFactory, SourceReader, source_name

__all__ = ["Delivery", "ReaderFactory", "SourceReader", "source_name"]
