"""``GCSBucket``: each batch becomes one object ``<file_path stem>-<8 hex>-<batch number>.<ext>``.

Objects go through an ``ObjectStore``: Cloud Storage's JSON API (gcloud-aio-storage, on
aiohttp; pass ``api_root`` to use an emulator), or on the local target the bucket's folder,
written directly: the stack's Cloud Storage emulator serves that folder, so clients read
what the sink wrote, while a batch costs a synced file, not an emulator request. A returned
upload is durable in either.
"""

from __future__ import annotations

import abc
import asyncio
import secrets
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from bfctl.runtime.sinks.base import Row, SinkWriter, describe, local_path, sink_name
from bfctl.runtime.sinks.files import batch_name, split_name
from bfctl.runtime.sinks.formats import CONTENT_TYPES, encode_file, require_parquet
from buildflow.storage import durable
from buildflow.types.portable import FileFormat
from buildflow.types.schema import Column


class ObjectStore(abc.ABC):
    async def open(self) -> None:
        """Connect (on the worker's event loop)."""

    @abc.abstractmethod
    async def put(self, name: str, data: bytes, content_type: str) -> None:
        """Store a new object; durable when this returns."""

    async def close(self) -> None:
        """Release connections."""


class CloudStorageObjects(ObjectStore):
    """A bucket through Cloud Storage's JSON API (an emulator's when ``api_root`` is given)."""

    def __init__(self, bucket: str, api_root: str | None = None) -> None:
        self.bucket = bucket
        self.api_root = api_root
        self._storage: Any = None

    async def open(self) -> None:
        from gcloud.aio.storage import Storage

        self._storage = Storage(api_root=self.api_root) if self.api_root else Storage()

    async def put(self, name: str, data: bytes, content_type: str) -> None:
        await self._storage.upload(self.bucket, name, data, content_type=content_type)

    async def close(self) -> None:
        if self._storage is not None:
            await self._storage.close()


class FolderObjects(ObjectStore):
    """A bucket's folder on the local target: objects are files, written whole, synced."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def put(self, name: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._put, name, data)

    def path_of(self, name: str) -> Path:
        """The file of object ``name``; ValueError for a name that would leave the folder."""
        relative = PurePosixPath(name)
        if not name or relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"object name {name!r} must stay inside the bucket")
        return self.root.joinpath(*relative.parts)

    def _put(self, name: str, data: bytes) -> None:
        path = self.path_of(name)
        durable.make_dirs(path.parent)
        durable.write_new_file(path, data)


class GCSWriter(SinkWriter):
    def __init__(
        self,
        store: ObjectStore,
        file_path: str,
        file_format: FileFormat,
        columns: list[Column] | None,
        description: str,
    ) -> None:
        self.store = store
        self.file_format = file_format
        self.columns = columns
        self.description = description
        if file_format is FileFormat.PARQUET:
            require_parquet(description)
        self._stem, self._suffix = split_name(file_path.lstrip("/"), file_format)
        self._token = secrets.token_hex(4)
        self._batches = 0

    async def start(self) -> None:
        await self.store.open()

    async def write(self, rows: list[Row]) -> None:
        if not rows:
            return
        data = await asyncio.to_thread(encode_file, rows, self.file_format, self.columns)
        name = batch_name(self._stem, self._suffix, self._token, self._batches)
        await self.store.put(name, data, CONTENT_TYPES[self.file_format])
        self._batches += 1

    async def stop(self) -> None:
        await self.store.close()


def _bucket_writer(
    primitive: Any, out: Mapping[str, Any], store: ObjectStore, schema: list[Column] | None
) -> GCSWriter:
    if primitive.file_path is None or primitive.file_format is None:
        raise TypeError(
            f"{sink_name(primitive)} is used as a sink, so it needs file_path and file_format: "
            "GCSBucket(project_id, bucket_name, file_path='events/rows.json', file_format=FileFormat.JSON)"
        )
    return GCSWriter(store, primitive.file_path, primitive.file_format, schema, describe(primitive, out))


def cloud_storage_writer(
    primitive: Any, out: Mapping[str, Any], schema: list[Column] | None, project_dir: Path
) -> GCSWriter:
    """``Engine.GCS``: the bucket itself (an emulator's when the outputs give an ``api_root``)."""
    store = CloudStorageObjects(out.get("bucket", primitive.bucket_name), out.get("api_root"))
    return _bucket_writer(primitive, out, store, schema)


def folder_writer(primitive: Any, out: Mapping[str, Any], schema: list[Column] | None, project_dir: Path) -> GCSWriter:
    """``Engine.FOLDER``: the bucket's folder on the local target."""
    return _bucket_writer(primitive, out, FolderObjects(local_path(out["path"], project_dir)), schema)
