"""The buckets of ``BucketDependencyBuilder`` dependencies: google-cloud-storage ``Bucket`` objects.

One client per worker, made from what the target applied for the bucket. When the outputs give
an ``api_root`` (the local target's Cloud Storage emulator, which serves the folder the bucket's
sinks write and its change streams watch) the client talks to it, anonymously; otherwise it is
Cloud Storage's, with application default credentials, billed to the quota project when one is
given (BuildFlow's ``gcp_quota_project_id``, also the client's project, as in BuildFlow).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from bfctl.runtime.errors import StartupError
from bfctl.runtime.sinks.base import sink_name
from buildflow.dependencies.bucket import BucketOpener
from buildflow.storage.engines import Engine


def storage_client(api_root: str | None, project: str | None, quota_project_id: str | None) -> Any:
    """A ``google.cloud.storage.Client``: of the emulator at ``api_root``, or of Cloud Storage."""
    from google.api_core.client_options import ClientOptions
    from google.cloud.storage import Client

    if api_root is not None:
        from google.auth.credentials import AnonymousCredentials

        return Client(
            project=project or "local",
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=api_root),
        )
    options = ClientOptions(quota_project_id=quota_project_id) if quota_project_id else None
    if project is None:  # the environment's (application default credentials)
        return Client(client_options=options)
    return Client(project=project, client_options=options)


class RuntimeBucketOpener(BucketOpener):
    """The ``BucketOpener`` the runtime injects: buckets from the applied outputs."""

    def __init__(self, outputs: Mapping[str, Mapping[str, Any]]) -> None:
        self._outputs = outputs

    async def open(self, primitive: Any, quota_project_id: str | None) -> Any:
        out = self._outputs[primitive.primitive_id()]
        engine = out.get("engine") or Engine.GCS  # the gcp target's outputs name no engine
        if engine not in (Engine.GCS, Engine.FOLDER):
            raise StartupError(f"{sink_name(primitive)} is not a bucket on this target (its engine is {engine!r})")
        if engine == Engine.FOLDER and not out.get("api_root"):
            raise StartupError(
                f"{sink_name(primitive)}: no Cloud Storage emulator serves it; `bfctl serve` starts it (apply again)"
            )
        name = str(out.get("bucket") or out.get("bucket_name") or primitive.bucket_name)
        project = quota_project_id or out.get("project_id") or getattr(primitive, "project_id", None)
        client = await asyncio.to_thread(storage_client, out.get("api_root"), project, quota_project_id)
        return client.bucket(name)
