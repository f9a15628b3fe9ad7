"""``GCSBucket`` on the local target: a folder, served by a Cloud Storage emulator.

The bucket is ``<stack dir>/gcs/<bucket>/``, one file per object: a GCS sink writes its batches
there directly (each written whole and synced), a file change stream watches it, and the
stack's emulator (``bfctl.providers.local.storage_emulator``: gcp-storage-emulator over these
folders) serves it to google-cloud-storage clients, such as ``BucketDependencyBuilder``'s
``.bucket``. Apply makes the folder; serving starts the emulator as a service of the stack that
outlives the server and is found again by the next one (like the PostgreSQL servers), and makes
the buckets in it. Sinks and change streams need no emulator, so apply starts none. Destroy
refuses a bucket that holds objects unless ``force_destroy`` is set, as Cloud Storage does, and
stops the emulator with the last bucket.
"""

from __future__ import annotations

import shutil
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from bfctl.providers.local.errors import LocalTargetError
from bfctl.providers.local.family import Family
from bfctl.providers.local.net import HOST
from bfctl.providers.local.services import DetachedService, answers, call
from bfctl.providers.state import ResourceState, State, record
from buildflow.io.gcp import GCSBucket
from buildflow.io.primitive import Primitive
from buildflow.storage import durable
from buildflow.storage.engines import Engine

STAND_IN = "Cloud Storage emulator (gcp-storage-emulator) on a folder"


def _up(port: int) -> bool:
    return answers(f"http://{HOST}:{port}/storage/v1/b?project=_")


def _objects(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


class BucketFamily(Family):
    primitive_types = (GCSBucket,)

    @property
    def folder(self) -> Path:
        """Where the buckets' folders are (and the emulator's list of buckets)."""
        return self.root / "gcs"

    @property
    def service(self) -> DetachedService:
        return DetachedService(self.root / "storage-emulator", "storage-emulator")

    def _buckets(self, state: State) -> list[ResourceState]:
        return [r for r in state.resources.values() if r.resource_type == GCSBucket.resource_type]

    def refresh(self, state: State) -> None:
        for rec in self._buckets(state):
            folder = self.absolute(rec.private["folder"])
            if not folder.is_dir():
                del state.resources[rec.resource_id]
            else:
                rec.outputs["path"] = str(folder)
        if not self._buckets(state) and self.service.pid_file.exists():
            # an emulator no bucket's record names (their folders deleted by hand): nothing would stop it
            self.service.stop()
            shutil.rmtree(self.service.directory, ignore_errors=True)

    # -- the emulator ------------------------------------------------------------------------------
    def _emulator(self, state: State) -> str:
        """The running emulator's address (started when it is not running, on its last port
        if that is free)."""
        durable.make_dirs(self.folder)
        served = [
            urllib.parse.urlsplit(r.outputs["api_root"]).port for r in self._buckets(state) if "api_root" in r.outputs
        ]

        def command(port: int) -> list[str]:
            module = "bfctl.providers.local.storage_emulator"
            return [sys.executable, "-m", module, "--root", str(self.folder), "--host", HOST, "--port", str(port)]

        return f"http://{HOST}:{self.service.start(command, _up, served[0] if served else None)}"

    def _make_in(self, api_root: str, rec: ResourceState) -> None:
        """Make the bucket in the emulator unless it knows it; a deleted object is gone at once
        (no soft-delete retention: the emulator would keep a copy for a week)."""
        name = rec.properties["bucket_name"]
        url = f"{api_root}/storage/v1/b/{name}"
        if call("GET", url) == 200:
            return
        project = urllib.parse.quote(rec.properties["project_id"])
        made = call("POST", f"{api_root}/storage/v1/b?project={project}", {"name": name})
        settings = {"location": rec.properties["bucket_region"], "softDeletePolicy": {"retentionDurationSeconds": "0"}}
        status = call("PATCH", url, settings) if made in (200, 409) else made
        if status != 200:
            raise LocalTargetError(
                f"the Cloud Storage emulator answered {status} making the bucket {name}; "
                f"its log {self.service.log} ends with:\n{self.service.log_tail()}"
            )

    # -- apply -------------------------------------------------------------------------------------
    def put(self, state: State, primitive: Primitive) -> str:
        assert isinstance(primitive, GCSBucket)
        folder = self.folder / primitive.bucket_name
        durable.make_dirs(folder)
        outputs = {"engine": Engine.FOLDER, "path": str(folder), "bucket": primitive.bucket_name, "stand_in": STAND_IN}
        known = state.resources.get(primitive.primitive_id())
        if known is not None and known.outputs.get("api_root"):
            outputs["api_root"] = known.outputs["api_root"]
        record(state, primitive, primitive.desired_properties(), outputs, {"folder": self.relative(folder)})
        return f"{self.relative(folder)}, served by the stack's Cloud Storage emulator while serving"

    def delete(self, state: State, rec: ResourceState, doomed: set[str]) -> str:
        folder = self.absolute(rec.private["folder"])
        objects = _objects(folder)
        if objects and not rec.properties.get("force_destroy"):
            raise LocalTargetError(
                f"bucket {rec.properties['bucket_name']} holds {objects} object(s) in {folder}: move them "
                "away, or set .options(force_destroy=True) and apply, then destroy"
            )
        del state.resources[rec.resource_id]
        shutil.rmtree(folder, ignore_errors=True)
        if not self._buckets(state):  # the last one: the emulator and its files go with it
            self.service.stop()
            shutil.rmtree(self.service.directory, ignore_errors=True)
            shutil.rmtree(self.folder, ignore_errors=True)
        elif (port := self.service.running_port()) is not None:  # else it forgets the bucket when it starts
            folder.mkdir()  # empty: the emulator removes it with the bucket and what it recorded of its objects
            call("DELETE", f"http://{HOST}:{port}/storage/v1/b/{rec.properties['bucket_name']}")
        return f"deleted with {objects} object(s)" if objects else "deleted"

    # -- serving -----------------------------------------------------------------------------------
    def client_environment(self, state: State) -> dict[str, str]:
        roots = [rec.outputs["api_root"] for rec in self._buckets(state) if rec.outputs.get("api_root")]
        return {"STORAGE_EMULATOR_HOST": roots[0]} if roots else {}

    def ensure_running(self, state: State, started: Callable[[str], None]) -> bool:
        """Start the emulator and make sure it knows every bucket; True when its address moved."""
        buckets = self._buckets(state)
        if not buckets:
            return False
        api_root = self._emulator(state)
        moved = False
        for rec in buckets:
            self._make_in(api_root, rec)
            moved |= rec.outputs.get("api_root") != api_root
            rec.outputs["api_root"] = api_root
        return moved
