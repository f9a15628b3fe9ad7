"""The notes service the gcp program's tests deploy: one endpoint on a Cloud SQL database, the
password a Secret, and the Deployment the gcp target makes of it (``main:app`` as notes-dev)."""

from __future__ import annotations

from typing import Any

from support import cloud_sql_instance

from bfctl.infra import declared_primitives
from bfctl.providers.gcp.deploy import Deployment, deployment_of
from buildflow import Flow
from buildflow.dependencies.sqlalchemy import SessionDep
from buildflow.io.gcp import CloudSQLDatabase
from buildflow.secrets import Secret

#: The image the service runs, by digest as the gcp target deploys it.
IMAGE = "us-central1-docker.pkg.dev/my-project/bfctl/notes@sha256:" + "ab" * 32


def notes_flow(**service_options: Any) -> tuple[Flow, list[Any]]:
    app = Flow()
    instance = cloud_sql_instance("notes-db")
    database = CloudSQLDatabase(instance=instance, database_name="notes")
    app.manage(instance, database)
    db = SessionDep(db_primitive=database, db_user="notes", db_password=Secret("notes-db-password"))
    service = app.service(**service_options)

    @service.endpoint("/notes")
    def notes(session: db) -> list[str]:
        return []

    return app, declared_primitives(app, "gcp")


def deploy(flow: Flow, primitives: list[Any], **flags: Any) -> Deployment:
    deployment = deployment_of(
        flow,
        primitives,
        target="main:app",
        name="notes-dev",
        project="my-project",
        region="us-central1",
        table={},
        flags=flags,
    )
    assert deployment is not None
    return deployment
