"""File change streams on the local target: a watched folder, or a bucket's folder stand-in.

``LocalFileChangeStream``: apply makes the folder (destroy removes it only when apply made it
and it is empty: the files are the user's). ``GCSFileChangeStream``: the events come from the
folder that stands in for the bucket (``buckets``), so objects a GCS sink writes there are
events too; nothing else is made (no topic, no notification: those are the cloud's).

Both outputs name a ``record`` under the stack's folder, ``sources/<stream>.json``: what the
reader has delivered and had acked, so a restart delivers what arrived meanwhile and nothing
twice. Apply makes it holding the files already in the folder, which are therefore not events
(the stream starts when it is applied); destroy removes it with the stream.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from bfctl.providers.local.errors import LocalTargetError
from bfctl.providers.local.family import Family, dir_name
from bfctl.providers.state import ResourceState, State, record
from buildflow.io.gcp import GCSFileChangeStream
from buildflow.io.local import LocalFileChangeStream
from buildflow.io.primitive import Primitive
from buildflow.storage import change_record
from buildflow.storage.engines import Engine

#: Seconds a file that is still open for writing must stay unchanged before it counts as written.
SETTLE_SECONDS = 2.0


class FileChangeFamily(Family):
    primitive_types = (LocalFileChangeStream, GCSFileChangeStream)

    def _record_path(self, rid: str) -> Path:
        return self.root / "sources" / f"{dir_name(rid)}.json"

    def _outputs(self, primitive: Primitive, engine: Engine, folder: Path) -> dict[str, Any]:
        """The reader's outputs; the stream's record is made now if it is new."""
        assert isinstance(primitive, LocalFileChangeStream | GCSFileChangeStream)
        change_record.create(self._record_path(primitive.primitive_id()), folder, engine)
        return {
            "engine": engine,
            "path": str(folder),
            "event_types": sorted(e.name for e in primitive.event_types),
            "record": str(self._record_path(primitive.primitive_id())),
            "settle_seconds": SETTLE_SECONDS,
        }

    def _bucket_folder(self, state: State, bucket_id: str) -> Path:
        bucket = state.resources.get(bucket_id)
        if bucket is None:
            raise LocalTargetError(f"bucket {bucket_id} is not applied: apply it with its change stream")
        return Path(bucket.outputs["path"])

    def refresh(self, state: State) -> None:
        for rec in [r for r in state.resources.values() if r.resource_type in self.resource_types]:
            if rec.resource_type == GCSFileChangeStream.resource_type:
                bucket = state.resources.get(rec.parents[0])
                if bucket is not None:  # else the provider drops this record with its parent
                    rec.outputs["path"] = bucket.outputs["path"]
            elif not Path(rec.outputs["path"]).is_dir():
                del state.resources[rec.resource_id]

    def put(self, state: State, primitive: Primitive) -> str:
        if isinstance(primitive, GCSFileChangeStream):
            folder = self._bucket_folder(state, primitive.gcs_bucket.primitive_id())
            outputs = {**self._outputs(primitive, Engine.FOLDER, folder), "bucket": primitive.gcs_bucket.bucket_name}
            record(state, primitive, primitive.desired_properties(), outputs)
            return f"events of the objects in {self.relative(folder)}"
        assert isinstance(primitive, LocalFileChangeStream)
        folder = Path(primitive.file_path)
        made, missing = self.make_folder(state, primitive.primitive_id(), folder)
        outputs = self._outputs(primitive, Engine.WATCH, folder)
        record(state, primitive, primitive.desired_properties(), outputs, {"made_dirs": made})
        return f"folder {self.relative(folder)} {'created' if missing else 'exists'}, watched"

    def delete(self, state: State, rec: ResourceState, doomed: set[str]) -> str:
        record_path = Path(rec.outputs["record"])
        for path in (record_path, record_path.with_name(record_path.name + ".lock")):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            record_path.parent.rmdir()  # the sources folder, when it was the last stream's
        kept = ""
        self.remove_made_folders(rec)
        folder = Path(rec.outputs["path"])
        if rec.resource_type == LocalFileChangeStream.resource_type and folder.is_dir():
            kept = f"; folder {self.relative(folder)} kept"
        del state.resources[rec.resource_id]
        return f"no longer watched{kept}"
