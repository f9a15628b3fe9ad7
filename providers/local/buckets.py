"""``GCSBucket`` on the local target: a folder stands in for the bucket.

``gcp-storage-emulator`` speaks the real API but rewrites the metadata of every object in
one file on each upload, so uploads slow down as objects accumulate (measured: 121 uploads/s
for the first thousand objects, 14/s after five thousand, in memory or on disk) and that file
is rewritten in place without fsync. A sink writes one object per batch, so the folder is
the reliable choice: ``<stack dir>/gcs/<bucket>/<object name>``, each object written whole
and synced. Destroy refuses a bucket that holds objects unless ``force_destroy`` is set, as
Cloud Storage does.
"""

from __future__ import annotations

import contextlib
import shutil

from buildflow.io.gcp import GCSBucket
from buildflow.io.primitive import Primitive
from buildflow.storage import durable
from buildflow.storage.engines import Engine
from providers.local.family import Family
from providers.local.postgres import LocalTargetError
from providers.state import ResourceState, State, record

STAND_IN = "folder stand-in for Cloud Storage"


class BucketFamily(Family):
    primitive_types = (GCSBucket,)

    def refresh(self, state: State) -> None:
        for rec in [r for r in state.resources.values() if r.resource_type == GCSBucket.resource_type]:
            folder = self.absolute(rec.private["folder"])
            if not folder.is_dir():
                del state.resources[rec.resource_id]
            else:
                rec.outputs["path"] = str(folder)

    def put(self, state: State, primitive: Primitive) -> str:
        assert isinstance(primitive, GCSBucket)
        folder = self.root / "gcs" / primitive.bucket_name
        durable.make_dirs(folder)
        outputs = {"engine": Engine.FOLDER, "path": str(folder), "bucket": primitive.bucket_name, "stand_in": STAND_IN}
        record(state, primitive, primitive.desired_properties(), outputs, {"folder": self.relative(folder)})
        return f"{STAND_IN}: {self.relative(folder)}"

    def delete(self, state: State, rec: ResourceState, doomed: set[str]) -> str:
        folder = self.absolute(rec.private["folder"])
        objects = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
        if objects and not rec.properties.get("force_destroy"):
            raise LocalTargetError(
                f"bucket {rec.properties['bucket_name']} holds {objects} object(s) in {folder}: move them "
                "away, or set .options(force_destroy=True) and apply, then destroy"
            )
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the gcs folder, when it was the last bucket
        del state.resources[rec.resource_id]
        return f"deleted with {objects} object(s)" if objects else "deleted"
