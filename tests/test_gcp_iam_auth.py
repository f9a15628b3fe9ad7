"""``SessionDep(..., enable_iam_auth=True)`` on Cloud Run: what the stack must make for Cloud SQL to
let the service's account log in with a token, checked on the real program under Pulumi's mocks.

Cloud SQL for PostgreSQL refuses an IAM login unless the instance's ``cloudsql.iam_authentication``
flag is on, the principal is a user of type CLOUD_IAM_SERVICE_ACCOUNT named by its email without
``.gserviceaccount.com``, and it holds roles/cloudsql.instanceUser (with roles/cloudsql.client to
connect); an IAM user has no privileges on the flow's tables until granted some.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import cloud_sql_instance

pytest.importorskip("pulumi")

from gcp_mocks import RecordingMonitor, run_program

from bfctl.infra import declared_primitives
from bfctl.providers.gcp.deploy import Deployment, deployment_of, unmade_iam_users
from buildflow import Flow
from buildflow.dependencies.sqlalchemy import SessionDep
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance
from buildflow.secrets import Secret
from buildflow.types.gcp import CloudSQLInstanceSettings

IMAGE = "us-central1-docker.pkg.dev/my-project/bfctl/notes@sha256:" + "ab" * 32
IAM_USER = "notes-dev-run@my-project.iam"
IAM_USER_RESOURCE = f"my-project:notes-db/users/{IAM_USER}"
ONLY_NOTES_DB = {"title": "only notes-db", "expression": 'resource.name == "projects/my-project/instances/notes-db"'}


def notes_flow(*, iam: bool, password_user: bool = True) -> tuple[Flow, list[Any]]:
    """The notes service: migrations (and the tables) as the password user ``notes`` when there is
    one, and the handlers on a session that logs in with IAM when ``iam``."""
    app = Flow()
    instance = cloud_sql_instance("notes-db")
    instance.settings = CloudSQLInstanceSettings(
        tier="db-f1-micro", database_flags=[{"name": "max_connections", "value": "50"}]
    )
    database = CloudSQLDatabase(instance=instance, database_name="notes")
    app.manage(instance, database)
    migrator = (
        SessionDep(db_primitive=database, db_user="notes", db_password=Secret("notes-db-password"))
        if password_user
        else None
    )
    session = SessionDep(database, "me@example.com", "", enable_iam_auth=True) if iam else migrator
    service = app.service()

    @service.endpoint("/notes")
    def notes(db: session) -> list[str]:  # type: ignore[valid-type]
        return []

    return app, declared_primitives(app, "gcp")


def deploy(flow: Flow, primitives: list[Any]) -> Deployment:
    deployment = deployment_of(
        flow, primitives, target="main:app", name="notes-dev", project="my-project", region="us-central1", table={},
        flags={},
    )  # fmt: skip
    assert deployment is not None
    return deployment


def roles(monitor: RecordingMonitor) -> dict[str, tuple[str, Any]]:
    """The service account's Cloud SQL roles on the project."""
    return {
        name: (r["inputs"]["role"], r["inputs"].get("condition"))
        for name, r in monitor.registered.items()
        if r["type"] == "gcp:projects/iAMMember:IAMMember" and r["inputs"]["role"].startswith("roles/cloudsql.")
    }


def test_iam_login_turns_the_flag_on_makes_the_accounts_user_and_grants_it(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow(iam=True)
    run_program(primitives, project="my-project", deployment=deploy(flow, primitives), image=IMAGE)

    flags = monitor.registered["my-project:notes-db"]["inputs"]["settings"]["databaseFlags"]
    assert flags == [{"name": "max_connections", "value": "50"}, {"name": "cloudsql.iam_authentication", "value": "on"}]

    user = monitor.registered[IAM_USER_RESOURCE]
    assert user["type"] == "gcp:sql/user:User"
    inputs = user["inputs"]
    assert (inputs["name"], inputs["instance"], inputs["project"]) == (IAM_USER, "notes-db", "my-project")
    assert inputs["type"] == "CLOUD_IAM_SERVICE_ACCOUNT" and "password" not in inputs
    # it may use what the password user's migrations made, and make tables as a built-in user may
    assert inputs["databaseRoles"] == ["notes", "cloudsqlsuperuser"]
    urns = {r["urn"]: name for name, r in monitor.registered.items()}
    assert {urns[u] for u in user["dependencies"]} >= {
        "service-account",
        "my-project:notes-db",
        "my-project:notes-db/users/notes",
    }
    assert IAM_USER_RESOURCE in {urns[u] for u in monitor.registered["service"]["dependencies"] if u in urns}

    assert roles(monitor) == {
        "grant-cloudsql.client-my-project-notes-db": ("roles/cloudsql.client", ONLY_NOTES_DB),
        "grant-cloudsql.instanceUser-my-project-notes-db": ("roles/cloudsql.instanceUser", ONLY_NOTES_DB),
    }

    (container,) = monitor.registered["service"]["inputs"]["template"]["containers"]
    env = {e["name"]: e.get("value") for e in container["envs"]}
    given = json.loads(env["BUILDFLOW_OUTPUTS"])["outputs"]["my-project:notes-db.notes"]
    assert given["iam_user"] == IAM_USER  # whom the service logs in as


def test_an_iam_only_database_gets_the_built_in_role_alone(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow(iam=True, password_user=False)
    run_program(primitives, project="my-project", deployment=deploy(flow, primitives), image=IMAGE)

    assert monitor.registered[IAM_USER_RESOURCE]["inputs"]["databaseRoles"] == ["cloudsqlsuperuser"]
    assert not any(name.endswith("/users/notes") for name in monitor.registered)


def test_password_logins_get_no_flag_no_iam_user_and_no_instance_user_role(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow(iam=False)
    run_program(primitives, project="my-project", deployment=deploy(flow, primitives), image=IMAGE)

    assert monitor.registered["my-project:notes-db"]["inputs"]["settings"]["databaseFlags"] == [
        {"name": "max_connections", "value": "50"}
    ]
    assert not [r for r in monitor.registered.values() if r["inputs"].get("type") == "CLOUD_IAM_SERVICE_ACCOUNT"]
    assert [role for role, _ in roles(monitor).values()] == ["roles/cloudsql.client"]


def test_an_instance_the_stack_only_uses_is_left_to_its_owner_with_what_to_do() -> None:
    flow, primitives = notes_flow(iam=True)
    used = [p for p in primitives if not isinstance(p, CloudSQLInstance)]  # the instance exists already

    deployment = deploy(flow, used)

    assert deployment.iam_databases == ()
    (warning,) = unmade_iam_users(deployment, used)
    assert "my-project:notes-db.notes" in warning and "cloudsql.iam_authentication" in warning
    assert (
        f"gcloud sql users create {IAM_USER} --instance=notes-db --project=my-project --type=cloud_iam_service_account"
        in warning
    )
    assert unmade_iam_users(deploy(flow, primitives), primitives) == []
