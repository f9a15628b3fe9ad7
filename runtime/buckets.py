"""The object-store handles of ``BucketDependencyBuilder`` dependencies.

A handle is opened once per worker from what the target applied for its bucket: Cloud
Storage through its JSON API (gcloud-aio-storage; an emulator's when the outputs give an
``api_root``), or on the local target the folder standing in for the bucket. Both build on
the GCS sink's object stores (``runtime.sinks.gcs``). An upload returns once the object is
durable; a missing object is ``FileNotFoundError`` in both.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import mimetypes
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from buildflow.dependencies.bucket import BucketOpener
from buildflow.storage import durable
from buildflow.storage.engines import Engine
from runtime.blocking import wait_on_loop
from runtime.errors import StartupError
from runtime.sinks.base import local_path, sink_name
from runtime.sinks.gcs import CloudStorageObjects, FolderObjects

T = TypeVar("T")
#: Object names (``list`` is a method of the buckets, so annotations use this).
Names = list[str]


def _content(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def _content_type(name: str, given: str | None) -> str:
    return given or mimetypes.guess_type(name)[0] or "application/octet-stream"


class ObjectBucket(abc.ABC):
    """One bucket's objects (``buildflow.dependencies.bucket.BucketHandle``); opened on the
    worker's event loop, which ``sync`` runs its calls on."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.sync = SyncBucket(self, asyncio.get_running_loop())

    async def open(self) -> None:
        """Connect (on the worker's event loop)."""

    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    async def upload(self, name: str, data: bytes | str, content_type: str | None = None) -> None:
        """Store ``data`` as ``name``, replacing it; durable when this returns."""

    @abc.abstractmethod
    async def download(self, name: str) -> bytes:
        """The contents of ``name``."""

    @abc.abstractmethod
    async def list(self, prefix: str = "") -> list[str]:
        """Names of the objects that start with ``prefix``, sorted."""

    @abc.abstractmethod
    async def delete(self, name: str) -> None:
        """Remove ``name``."""

    def missing(self, name: str) -> FileNotFoundError:
        return FileNotFoundError(f"no object {name!r} in the bucket {self.bucket}")


class SyncBucket:
    """The blocking form of a bucket's methods, for sync handlers (which run in threads)."""

    def __init__(self, bucket: ObjectBucket, loop: asyncio.AbstractEventLoop) -> None:
        self._bucket = bucket
        self._loop = loop

    def _wait(self, call: Coroutine[Any, Any, T]) -> T:
        return wait_on_loop(self._loop, call, "await bucket.upload(...)")

    def upload(self, name: str, data: bytes | str, content_type: str | None = None) -> None:
        self._wait(self._bucket.upload(name, data, content_type))

    def download(self, name: str) -> bytes:
        return self._wait(self._bucket.download(name))

    def list(self, prefix: str = "") -> list[str]:
        return self._wait(self._bucket.list(prefix))

    def delete(self, name: str) -> None:
        self._wait(self._bucket.delete(name))


class FolderBucket(FolderObjects, ObjectBucket):
    """The local folder standing in for a bucket: objects are files, each replaced whole."""

    def __init__(self, root: Path, bucket: str) -> None:
        FolderObjects.__init__(self, root)
        ObjectBucket.__init__(self, bucket)

    async def upload(self, name: str, data: bytes | str, content_type: str | None = None) -> None:
        await asyncio.to_thread(self._replace, name, _content(data))

    def _replace(self, name: str, data: bytes) -> None:
        path = self.path_of(name)
        durable.make_dirs(path.parent)
        durable.replace_file(path, data)

    async def download(self, name: str) -> bytes:
        try:
            return await asyncio.to_thread(self.path_of(name).read_bytes)
        except (FileNotFoundError, IsADirectoryError):
            raise self.missing(name) from None

    async def list(self, prefix: str = "") -> list[str]:
        return await asyncio.to_thread(self._names, prefix)

    def _names(self, prefix: str) -> Names:
        names = (
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and not (path.name.startswith(".") and path.name.endswith(".tmp"))  # being written
        )
        return sorted(n for n in names if n.startswith(prefix))

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self._delete, name)

    def _delete(self, name: str) -> None:
        path = self.path_of(name)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError):
            raise self.missing(name) from None
        for folder in path.parents:  # a bucket has no folders: none is left empty behind
            if folder == self.root:
                break
            try:
                folder.rmdir()
            except OSError:
                break


class CloudStorageBucket(CloudStorageObjects, ObjectBucket):
    """A Cloud Storage bucket; ``quota_project_id`` is billed for the calls when given."""

    def __init__(self, bucket: str, api_root: str | None = None, quota_project_id: str | None = None) -> None:
        CloudStorageObjects.__init__(self, bucket, api_root)
        ObjectBucket.__init__(self, bucket)
        self._headers = {"x-goog-user-project": quota_project_id} if quota_project_id else {}

    async def upload(self, name: str, data: bytes | str, content_type: str | None = None) -> None:
        payload = _content(data)
        await self._storage.upload(
            self.bucket, name, payload, content_type=_content_type(name, content_type), headers=dict(self._headers)
        )

    async def download(self, name: str) -> bytes:
        with self._not_found(name):
            data: bytes = await self._storage.download(self.bucket, name, headers=dict(self._headers))
        return data

    async def list(self, prefix: str = "") -> list[str]:
        names: Names = []
        params = {"prefix": prefix} if prefix else {}
        while True:
            page = await self._storage.list_objects(self.bucket, params=params, headers=dict(self._headers))
            names.extend(item["name"] for item in page.get("items", []))
            if not page.get("nextPageToken"):
                return sorted(names)
            params = {**params, "pageToken": page["nextPageToken"]}

    async def delete(self, name: str) -> None:
        with self._not_found(name):
            await self._storage.delete(self.bucket, name, headers=dict(self._headers))

    @contextlib.contextmanager
    def _not_found(self, name: str) -> Any:
        from aiohttp import ClientResponseError

        try:
            yield
        except ClientResponseError as e:
            if e.status == 404:
                raise self.missing(name) from None
            raise


class RuntimeBucketOpener(BucketOpener):
    """The ``BucketOpener`` the runtime injects: handles from the applied outputs."""

    def __init__(self, outputs: Mapping[str, Mapping[str, Any]], project_dir: Path) -> None:
        self._outputs = outputs
        self._project_dir = project_dir

    async def open(self, primitive: Any, quota_project_id: str | None) -> ObjectBucket:
        out = self._outputs[primitive.primitive_id()]
        engine = out.get("engine") or Engine.GCS  # the gcp target's outputs name no engine
        name = str(out.get("bucket") or out.get("bucket_name") or primitive.bucket_name)
        if engine == Engine.FOLDER:
            bucket: ObjectBucket = FolderBucket(local_path(out["path"], self._project_dir), name)
        elif engine == Engine.GCS:
            bucket = CloudStorageBucket(name, out.get("api_root"), quota_project_id)
        else:
            raise StartupError(f"{sink_name(primitive)} is not a bucket on this target (its engine is {engine!r})")
        await bucket.open()
        return bucket
