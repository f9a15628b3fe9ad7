"""The local target's Cloud Storage emulator: gcp-storage-emulator serving the folders of the
buckets, run as ``python -m bfctl.providers.local.storage_emulator --root <dir> --port <port>``.

``<root>/<bucket>/<object name>`` is the object, whoever wrote it: a GCS sink writes its
batches there directly, the emulator writes what clients upload there, and a file change stream
watches that folder, so all of them see one bucket. The emulator's own store keeps every
object's metadata in one JSON file (``.meta``) rewritten on each upload: 219 uploads/s for the
first 500 objects, 21/s past 2,000 (measured with google-cloud-storage). Here an object's
metadata is the file: what an upload through the API recorded for that very version of it
(``<root>/_objects/<bucket>/<sha256 of the name>.json``, ignored once the file changes), else
read off the file (size, checksums, generation from its mtime, type from its name). ``.meta``
keeps only the buckets, and uploads stay at 250-375/s through 3,000 objects, each synced
(atomic writes, ``buildflow.storage.durable``). A deleted object is gone (the buckets have no
soft-delete retention). The server stops by itself once the root folder is gone.

Buckets' names start with a letter or a digit, so ``.meta`` and ``_objects`` (and the
emulator's ``_resumable``) never clash with one.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import functools
import hashlib
import json
import logging
import mimetypes
import os
import re
import shutil
import stat
import threading
import time
import urllib.parse
from collections.abc import Iterator, MutableMapping
from http.server import HTTPServer
from pathlib import Path, PurePosixPath
from typing import Any

import google_crc32c
from gcp_storage_emulator.server import RequestHandler
from gcp_storage_emulator.settings import DEFAULT_PROJECT_NUMBER
from gcp_storage_emulator.storage import Storage, _FileStore

from buildflow.storage import durable

#: The folder of the metadata that uploads recorded, beside the buckets.
RECORDED = "_objects"
#: A temporary file of an atomic write (``durable``'s ``.<name>.<random>.tmp``): not an object yet.
TEMPORARY = re.compile(r"^\..+\.tmp$")

#: Seconds between checks that the folder still exists.
ROOT_CHECK_SECONDS = 5.0

Signature = list[int]  # inode, size, mtime_ns: this version of the file


def _signature(st: os.stat_result) -> Signature:
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _timestamp(ns: int) -> str:
    moment = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@functools.lru_cache(maxsize=4096)
def _read_off(path: str, bucket: str, name: str, signature: tuple[int, int, int]) -> dict[str, Any]:
    """The metadata of a file no upload recorded (one the sink wrote); computed once per version."""
    data = Path(path).read_bytes()
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - Cloud Storage's checksum
    crc32c = base64.b64encode(google_crc32c.Checksum(data).digest()).decode()
    written = _timestamp(signature[2])
    return {
        "kind": "storage#object",
        "id": f"{bucket}/{name}/{signature[2]}",
        "name": name,
        "bucket": bucket,
        "generation": str(signature[2]),
        "metageneration": "1",
        "contentType": mimetypes.guess_type(name)[0] or "application/octet-stream",
        "timeCreated": written,
        "updated": written,
        "storageClass": "STANDARD",
        "timeStorageClassUpdated": written,
        "size": str(len(data)),
        "md5Hash": md5,
        "crc32c": crc32c,
        "etag": md5,
        "acl": [],
    }


class BucketObjects(MutableMapping[str, dict[str, Any]]):
    """One bucket's objects as the emulator's ``Storage`` uses them (name -> resource): the
    files of its folder. Setting one records the metadata of the file just written."""

    def __init__(self, root: Path, bucket: str, base_url: str) -> None:
        self.bucket = bucket
        self.folder = root / bucket
        self.recorded = root / RECORDED / bucket
        self.base_url = base_url

    def _file(self, name: str) -> Path:
        parts = PurePosixPath(name).parts
        if not name or ".." in parts or name.startswith("/"):
            raise KeyError(name)
        return self.folder.joinpath(*parts)

    def _record_of(self, name: str) -> Path:
        return self.recorded / f"{hashlib.sha256(name.encode()).hexdigest()}.json"

    def _stat(self, name: str) -> os.stat_result:
        try:
            st = self._file(name).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise KeyError(name) from None
        if not stat.S_ISREG(st.st_mode):
            raise KeyError(name)
        return st

    def __getitem__(self, name: str) -> dict[str, Any]:
        signature = _signature(self._stat(name))
        try:
            recorded = json.loads(self._record_of(name).read_bytes())
        except FileNotFoundError:
            recorded = None
        if recorded is not None and recorded["signature"] == signature:
            resource = dict(recorded["object"])
        else:
            resource = dict(_read_off(str(self._file(name)), self.bucket, name, tuple(signature)))
        # where it is served now (the port may have changed since the upload), the name quoted
        # (the emulator's own link is not: names with "?" or "#" broke)
        resource["selfLink"] = f"/storage/v1/b/{self.bucket}/o/{name}"
        resource["mediaLink"] = (
            f"{self.base_url}/download/storage/v1/b/{self.bucket}/o/{urllib.parse.quote(name, safe='')}"
            f"?generation={resource['generation']}&alt=media"
        )
        return resource

    def __setitem__(self, name: str, resource: dict[str, Any]) -> None:
        signature = _signature(self._stat(name))
        durable.make_dirs(self.recorded)
        entry = {"signature": signature, "object": resource}
        durable.replace_file(self._record_of(name), json.dumps(entry).encode())

    def __delitem__(self, name: str) -> None:
        self._stat(name)
        self._record_of(name).unlink(missing_ok=True)

    def __iter__(self) -> Iterator[str]:
        for directory, subdirs, names in os.walk(self.folder):
            subdirs.sort()
            for name in sorted(names):
                if not TEMPORARY.match(name):
                    yield Path(directory, name).relative_to(self.folder).as_posix()

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None


class Buckets(MutableMapping[str, BucketObjects]):
    """``Storage.objects``: bucket -> its objects, for the buckets whose folder exists."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = root
        self.base_url = base_url

    def __getitem__(self, bucket: str) -> BucketObjects:
        if bucket.startswith(("_", ".")) or not (self.root / bucket).is_dir():
            raise KeyError(bucket)
        return BucketObjects(self.root, bucket, self.base_url)

    def __setitem__(self, bucket: str, objects: Any) -> None:
        """The emulator stores back the objects it changed: they are in place already."""

    def __delitem__(self, bucket: str) -> None:
        """The bucket goes: the metadata its uploads recorded with it."""
        shutil.rmtree(self.root / RECORDED / bucket, ignore_errors=True)

    def __iter__(self) -> Iterator[str]:
        return (p.name for p in sorted(self.root.iterdir()) if p.is_dir() and not p.name.startswith(("_", ".")))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class SyncedStore(_FileStore):
    """The emulator's disk store with atomic, synced writes; removing an object removes the
    folders it leaves empty (a bucket has no folders)."""

    def __init__(self, root: Path) -> None:
        super().__init__(use_memory=False, root=root)

    def write_bytes(self, rel: str, content: bytes) -> None:
        path = self._disk_path(rel)
        durable.make_dirs(path.parent)
        durable.replace_file(path, content)

    def remove_file(self, rel: str) -> None:
        super().remove_file(rel)
        path = self._disk_path(rel)
        bucket = self._disk_path(self._norm(rel).split("/")[0])
        for folder in path.parents:
            if folder == bucket or folder == self._root:
                break
            try:
                folder.rmdir()
            except OSError:
                break


class FolderStorage(Storage):
    """The emulator's storage over ``root``: objects from the folders, buckets in ``.meta``."""

    def __init__(self, root: Path, base_url: str) -> None:
        # The base's __init__ is not called: it would open a store of its own (on the data dir).
        self._data_dir = str(root)
        self._use_memory_fs = False
        self.project_number = str(DEFAULT_PROJECT_NUMBER)
        self._store = SyncedStore(root)
        self._root = root
        self._base_url = base_url
        self._written = b""
        self._read_config_from_file()

    def _read_config_from_file(self) -> None:
        super()._read_config_from_file()
        self.objects = Buckets(self._root, self._base_url)
        for gone in [b for b in self.buckets if b not in self.objects]:  # a bucket is its folder
            del self.buckets[gone]
            del self.objects[gone]
        self._write_config_to_file()

    def _write_config_to_file(self) -> None:
        """``.meta`` without the objects, rewritten only when it changes (not on every upload)."""
        data = {
            "buckets": self.buckets,
            "resumable": self.resumable,
            "bucket_iam_policies": self.bucket_iam_policies,
            "soft_deleted": self.soft_deleted,
        }
        encoded = json.dumps(data, indent=1).encode()
        if encoded != self._written:
            self._store.write_bytes(".meta", encoded)
            self._written = encoded


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="the folder that holds the buckets' folders")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    durable.make_dirs(args.root)
    root = args.root.resolve()
    storage = FolderStorage(root, f"http://{args.host}:{args.port}")
    server = HTTPServer((args.host, args.port), functools.partial(RequestHandler, storage))
    threading.Thread(target=_stop_without, args=(root, server), daemon=True).start()
    server.serve_forever()


def _stop_without(root: Path, server: HTTPServer) -> None:
    """Stop once ``root`` is gone: a project deleted without ``bfctl destroy`` leaves no server."""
    while root.is_dir():
        time.sleep(ROOT_CHECK_SECONDS)
    server.shutdown()


if __name__ == "__main__":
    main()
