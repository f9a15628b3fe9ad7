"""``BucketDependencyBuilder``: google-cloud-storage's ``Bucket`` of a bucket primitive (BuildFlow's).

```python
files = BucketDependencyBuilder(GCSBucket("my-project", "reports"))   # or a portable Bucket

@service.endpoint("/upload", method="POST")
def upload(file: UploadFile, dep: files) -> str:
    dep.bucket.blob(file.filename).upload_from_file(file.file)
    return "stored"
```

``dep.bucket`` is ``google.cloud.storage.Client(...).bucket(name)`` on both targets, so code
written for BuildFlow runs unchanged: Cloud Storage on gcp, and locally the stack's Cloud
Storage emulator, which serves the folder the bucket's sinks write and its change streams
watch. Its methods block (as in BuildFlow): an async handler that must not hold up the event
loop runs them in a thread (``await asyncio.to_thread(blob.download_as_bytes)``). The client is
made once per worker and closed with it; the runtime provides it (this module declares, it does
no I/O).

No postponed annotations: the dependency classes are built inside a function and their
annotations name local classes.
"""

from typing import TYPE_CHECKING, Any

from buildflow.dependencies.scopes import Scope, dependency

if TYPE_CHECKING:
    from google.cloud.storage import Bucket


@dependency(Scope.GLOBAL)
class BucketOpener:
    """Opens the bucket of a bucket primitive. This default has none, so a flow can be built
    without the runtime; the runtime replaces it with one that reads the applied outputs."""

    async def open(self, primitive: Any, quota_project_id: str | None) -> "Bucket":
        raise LookupError(
            f"no object store for the bucket {primitive.primitive_id()!r}: bucket dependencies are served "
            "by `bfctl serve` (or bfctl.testing), which opens them from the applied infrastructure"
        )


def BucketDependencyBuilder(
    bucket_primitive: Any, gcp_quota_project_id: str | None = None, aws_region: str | None = None
) -> type:
    """A NO_SCOPE dependency whose ``.bucket`` is a ``google.cloud.storage.Bucket`` of
    ``bucket_primitive`` (a ``GCSBucket`` or a portable ``Bucket``); ``gcp_quota_project_id``
    is billed for its calls on gcp. ``aws_region`` is accepted as in BuildFlow; bfctl does not
    support S3 buckets, which the runtime refuses when it starts."""
    primitive_id = bucket_primitive.primitive_id()

    @dependency(Scope.REPLICA)
    class BucketConnection:
        #: The bucket; the runtime checks it is one it can open when it starts.
        bucket_primitive: Any = None

        async def __init__(self, opener: BucketOpener) -> None:  # type: ignore[misc]  # the graph awaits an async __init__
            self.bucket = await opener.open(bucket_primitive, gcp_quota_project_id)

        def teardown(self) -> None:
            self.bucket.client.close()

    BucketConnection.bucket_primitive = bucket_primitive

    @dependency(Scope.NO_SCOPE)
    class BucketDependency:
        def __init__(self, connection: BucketConnection) -> None:
            self.bucket: Bucket = connection.bucket
            self.primitive = bucket_primitive

    for cls, name in ((BucketConnection, "BucketConnection"), (BucketDependency, "BucketDependency")):
        cls.__qualname__ = cls.__name__ = f"{name}[{primitive_id}]"
    return BucketDependency


__all__ = ["BucketDependencyBuilder", "BucketOpener"]
