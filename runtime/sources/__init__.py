"""Source readers: where consumers' messages come from, one reader per pull loop.

``reader_for`` picks the reader from what the target applied, as ``bfctl.runtime.sinks`` picks
writers: a source primitive's outputs carry an ``engine`` (``buildflow.storage.engines.Engine``)
and the rest is what that engine's reader needs. ``READERS`` names each engine's
``ReaderFactory``, imported only when a source uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bfctl.runtime.factories import load_factory
from bfctl.runtime.sources.base import Delivery, ReaderFactory, SourceReader, source_name
from buildflow.io.local.pulse import Pulse
from buildflow.storage.engines import Engine

__all__ = ["READERS", "Delivery", "ReaderFactory", "SourceReader", "reader_for", "source_name"]

#: Each engine's reader factory, as ``module:function``.
READERS: dict[Engine, str] = {
    Engine.PUBSUB: "bfctl.runtime.sources.pubsub:pubsub_reader",
    Engine.LOG: "bfctl.runtime.sources.log:log_reader",
    Engine.WATCH: "bfctl.runtime.sources.files:watch_reader",
    Engine.FOLDER: "bfctl.runtime.sources.files:bucket_folder_reader",
    Engine.PULSE: "bfctl.runtime.sources.pulse:pulse_reader",
}


def _unapplied_outputs(primitive: Any) -> dict[str, Any] | None:
    """The outputs of a source that needs nothing applied: a Pulse is its items."""
    return {"engine": Engine.PULSE} if isinstance(primitive, Pulse) else None


def _factory_of(engine: Any) -> ReaderFactory | None:
    factory: ReaderFactory | None = load_factory(READERS, engine)
    return factory


def reader_for(primitive: Any, outputs: Mapping[str, Mapping[str, Any]], project_dir: Path) -> SourceReader:
    """A new reader of ``primitive`` (one per pull loop), from what the target applied for it.

    Raises ``LookupError`` (saying to run ``bfctl apply``) when the source was not applied,
    ``NotImplementedError`` when no reader knows its engine on this target.
    """
    out: Mapping[str, Any] | None = _unapplied_outputs(primitive)
    if out is None:
        try:
            out = outputs[primitive.primitive_id()]
        except KeyError:  # a plain mapping's, or ResourceOutputs' NotApplied
            raise LookupError(
                f"{source_name(primitive)} was not applied: run `bfctl apply` (or `bfctl serve --apply`)"
            ) from None
    engine = out.get("engine")
    factory = _factory_of(engine) if engine else None
    if factory is None:
        raise NotImplementedError(f"no reader for {source_name(primitive)} with engine {engine!r} on this target")
    return factory(primitive, out, project_dir)
