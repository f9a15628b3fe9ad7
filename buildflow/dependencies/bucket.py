"""``BucketDependencyBuilder``: an object-store handle on a bucket (BuildFlow's).

```python
files = BucketDependencyBuilder(Bucket("reports"))   # or a GCSBucket

@service.endpoint("/reports/{name}", method="PUT")
async def put(name: str, body: bytes, dep: files) -> str:
    await dep.bucket.upload(name, body)       # durable when it returns
    return "ok"
```

``dep.bucket`` works the same on both targets: Cloud Storage on gcp, the folder that stands
in for the bucket locally. Its methods are coroutines; sync handlers (run in threads) call
the same methods on ``dep.bucket.sync``. The handle is opened once per worker and closed with
it; the runtime provides it (this module declares, it does no I/O).

No postponed annotations: the dependency classes are built inside a function and their
annotations name local classes.
"""

from typing import Any, Protocol

from buildflow.dependencies.scopes import Scope, dependency


class SyncBucketHandle(Protocol):
    """The blocking form of ``BucketHandle``, for sync handlers (never on the event loop)."""

    def upload(self, name: str, data: bytes | str, content_type: str | None = None) -> None: ...
    def download(self, name: str) -> bytes: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def delete(self, name: str) -> None: ...


class BucketHandle(Protocol):
    """Objects of one bucket, by name (``a/b.json``). A missing object is ``FileNotFoundError``."""

    @property
    def sync(self) -> SyncBucketHandle:
        """The same methods, blocking: for sync handlers."""

    async def upload(self, name: str, data: bytes | str, content_type: str | None = None) -> None:
        """Store ``data`` as ``name`` (replacing it); durable when this returns."""

    async def download(self, name: str) -> bytes:
        """The contents of ``name``."""

    async def list(self, prefix: str = "") -> list[str]:
        """Names of the objects that start with ``prefix``, sorted."""

    async def delete(self, name: str) -> None:
        """Remove ``name``."""

    async def close(self) -> None:
        """Release connections (the runtime calls it when the worker stops)."""


@dependency(Scope.GLOBAL)
class BucketOpener:
    """Opens the handle of a bucket primitive. This default has none, so a flow can be built
    without the runtime; the runtime replaces it with one that reads the applied outputs."""

    async def open(self, primitive: Any, quota_project_id: str | None) -> BucketHandle:
        raise LookupError(
            f"no object store for the bucket {primitive.primitive_id()!r}: bucket dependencies are served "
            "by `bfctl serve` (or runtime.testing), which opens them from the applied infrastructure"
        )


def BucketDependencyBuilder(
    bucket_primitive: Any, gcp_quota_project_id: str | None = None, aws_region: str | None = None
) -> type:
    """A NO_SCOPE dependency whose ``.bucket`` is a ``BucketHandle`` on ``bucket_primitive``
    (a ``GCSBucket`` or a portable ``Bucket``). ``aws_region`` is accepted as in BuildFlow;
    bfctl does not support S3 buckets, which the runtime refuses when it starts."""
    primitive_id = bucket_primitive.primitive_id()

    @dependency(Scope.REPLICA)
    class BucketConnection:
        #: The bucket; the runtime checks it is one it can open when it starts.
        bucket_primitive: Any = None

        async def __init__(self, opener: BucketOpener) -> None:  # type: ignore[misc]  # the graph awaits an async __init__
            self.bucket = await opener.open(bucket_primitive, gcp_quota_project_id)

        async def teardown(self) -> None:
            await self.bucket.close()

    BucketConnection.bucket_primitive = bucket_primitive

    @dependency(Scope.NO_SCOPE)
    class BucketDependency:
        def __init__(self, connection: BucketConnection) -> None:
            self.bucket: BucketHandle = connection.bucket
            self.primitive = bucket_primitive

    for cls, name in ((BucketConnection, "BucketConnection"), (BucketDependency, "BucketDependency")):
        cls.__qualname__ = cls.__name__ = f"{name}[{primitive_id}]"
    return BucketDependency


__all__ = ["BucketDependencyBuilder", "BucketHandle", "BucketOpener", "SyncBucketHandle"]
