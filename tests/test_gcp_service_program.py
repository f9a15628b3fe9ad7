"""The Cloud Run deployment the gcp program declares beside the data resources, run under
Pulumi's mocks: the service, its account and exactly its role bindings, the secrets, the
repository and the APIs."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("pulumi_gcp")

from flows.notes_service import IMAGE, deploy, notes_flow
from gcp_mocks import GENERATED_PASSWORD, RecordingMonitor, by_type, run_program

from bfctl.infra import declared_primitives
from buildflow import Flow
from buildflow.io.gcp import (
    BigQueryDataset,
    BigQueryTable,
    CloudSQLDatabase,
    GCPPubSubTopic,
    GCSBucket,
)
from buildflow.middleware import SessionMiddleware
from buildflow.secrets import Secret
from buildflow.types.portable import FileFormat

USER = "my-project:notes-db/users/notes"
SECRET_SIG = "4dabf18193072939515e22adb298388d"


def test_a_flow_without_max_replicas_gets_cloud_runs_default_not_1000(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow(min_replicas=0)  # BuildFlow's max_replicas default is 1000
    # with memory for a connection per instance, so that the connection budget does not lower it
    next(p for p in primitives if isinstance(p, CloudSQLDatabase)).instance.settings.tier = "db-custom-2-7680"
    run_program(primitives, project="my-project", deployment=deploy(flow, primitives), image=IMAGE)

    scaling = monitor.registered["service"]["inputs"]["template"]["scaling"]
    assert scaling == {"minInstanceCount": 0, "maxInstanceCount": 100}


def test_the_service_runs_the_image_by_digest_with_the_flows_settings(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow(num_cpus=2, min_replicas=0, max_replicas=7, max_concurrent_queries=40)
    exports = run_program(primitives, project="my-project", deployment=deploy(flow, primitives), image=IMAGE)

    service = monitor.registered["service"]
    assert service["type"] == "gcp:cloudrunv2/service:Service"
    inputs = service["inputs"]
    assert (inputs["name"], inputs["location"], inputs["project"]) == ("notes-dev", "us-central1", "my-project")
    assert inputs["ingress"] == "INGRESS_TRAFFIC_ALL"
    assert inputs["deletionProtection"] is False  # else destroy fails
    template = inputs["template"]
    assert template["serviceAccount"] == "notes-dev-run@my-project.iam.gserviceaccount.com"
    assert template["scaling"] == {"minInstanceCount": 0, "maxInstanceCount": 7}
    assert template["maxInstanceRequestConcurrency"] == 40
    assert "vpcAccess" not in template  # no VPC unless the project names one
    (container,) = template["containers"]
    assert container["image"] == IMAGE
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "1024Mi"}
    assert container["startupProbe"]["httpGet"] == {"path": "/_bf/health"}
    env = {e["name"]: e for e in container["envs"]}
    assert env["BFCTL_WORKERS"]["value"] == "2"
    assert env["GOOGLE_CLOUD_PROJECT"]["value"] == "my-project"
    assert env["BFCTL_TRACES"]["value"] == "cloudtrace"
    outputs = json.loads(env["BUILDFLOW_OUTPUTS"]["value"])
    assert outputs["target"] == "gcp"
    assert outputs["outputs"]["my-project:notes-db.notes"]["connection_name"] == "my-project:us-central1:notes-db"
    # The password reaches the container only as a Secret Manager reference.
    secret_env = env["BUILDFLOW_SECRET_NOTES_DB_PASSWORD"]
    assert "value" not in secret_env
    assert secret_env["valueSource"] == {"secretKeyRef": {"secret": "notes-dev-notes-db-password", "version": "1"}}
    assert GENERATED_PASSWORD not in json.dumps(container, default=str)
    assert exports["service"]["url"] == "https://notes-dev-abc123-uc.a.run.app"
    assert exports["service"]["image"] == IMAGE
    # The service is made after its account's bindings and the secret version it reads.
    urns = {r["urn"]: name for name, r in monitor.registered.items()}
    after = {urns[u] for u in service["dependencies"] if u in urns}
    assert {"image-repository", "grant-secretAccessor-notes-db-password", "secret-notes-db-password-version"} <= after
    assert {"api-run", "grant-cloudsql.client-my-project-notes-db"} <= after


def test_the_account_gets_exactly_the_roles_of_what_the_flow_uses(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow()
    run_program(primitives, project="my-project", deployment=deploy(flow, primitives), image=IMAGE)

    account = monitor.registered["service-account"]["inputs"]
    assert (account["accountId"], account["project"]) == ("notes-dev-run", "my-project")
    member = "serviceAccount:notes-dev-run@my-project.iam.gserviceaccount.com"
    bindings = {
        name: (r["type"].split(":")[1], r["inputs"]["role"], r["inputs"]["member"], r["inputs"].get("condition"))
        for name, r in monitor.registered.items()
        if "role" in r["inputs"] and not name.startswith("build-")  # the build account's: test_build_identity
    }
    assert bindings == {
        "grant-cloudsql.client-my-project-notes-db": (
            "projects/iAMMember",
            "roles/cloudsql.client",
            member,
            {"title": "only notes-db", "expression": 'resource.name == "projects/my-project/instances/notes-db"'},
        ),
        "grant-secretAccessor-notes-db-password": (
            "secretmanager/secretIamMember",
            "roles/secretmanager.secretAccessor",
            member,
            None,
        ),
        # its traces, written to Cloud Trace (the service is told so: BFCTL_TRACES=cloudtrace)
        "grant-cloudtrace.agent-project": ("projects/iAMMember", "roles/cloudtrace.agent", member, None),
    }
    assert monitor.registered["grant-secretAccessor-notes-db-password"]["inputs"]["secretId"] == (
        "notes-dev-notes-db-password"
    )
    assert not by_type(monitor, "gcp:cloudrunv2/serviceIamMember:ServiceIamMember")  # private by default


def test_the_secret_is_generated_once_and_shared_by_the_user_and_secret_manager(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow()
    secret: set[str] = set()
    exports = run_program(primitives, secret, project="my-project", deployment=deploy(flow, primitives), image=IMAGE)

    # the stack keeps it for what bfctl runs itself (migrations), as a secret output, and only it
    assert exports["_secrets"] == {"notes-db-password": GENERATED_PASSWORD}
    assert secret == {"_secrets"}
    password = monitor.registered[USER]["inputs"]["password"]
    version = monitor.registered["secret-notes-db-password-version"]["inputs"]["secretData"]
    for value in (password, version):
        assert isinstance(value, dict) and value.get(SECRET_SIG) and value["value"] == GENERATED_PASSWORD
    generator = monitor.registered["secret-notes-db-password-value"]
    assert generator["type"] == "random:index/randomPassword:RandomPassword"
    assert generator["inputs"] == {"length": 32, "special": False}
    secret = monitor.registered["secret-notes-db-password"]["inputs"]
    assert secret == {"secretId": "notes-dev-notes-db-password", "replication": {"auto": {}}, "project": "my-project"}


def test_a_session_key_secret_is_kept_by_the_stack_like_a_password(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow()
    flow.services[0].add_middleware(SessionMiddleware, secret_key=Secret("session-key"))
    secret: set[str] = set()
    exports = run_program(primitives, secret, project="my-project", deployment=deploy(flow, primitives), image=IMAGE)

    assert monitor.registered["secret-session-key"]["inputs"]["secretId"] == "notes-dev-session-key"
    assert monitor.registered["secret-session-key-value"]["type"] == "random:index/randomPassword:RandomPassword"
    assert "grant-secretAccessor-session-key" in monitor.registered
    (container,) = monitor.registered["service"]["inputs"]["template"]["containers"]
    env = {e["name"]: e for e in container["envs"]}
    assert env["BUILDFLOW_SECRET_SESSION_KEY"]["valueSource"]["secretKeyRef"]["secret"] == "notes-dev-session-key"
    assert set(exports["_secrets"]) == {"notes-db-password", "session-key"} and secret == {"_secrets"}


def test_a_given_secret_value_is_used_and_none_is_generated(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow()
    run_program(
        primitives,
        project="my-project",
        deployment=deploy(flow, primitives),
        image=IMAGE,
        given_secrets={"notes-db-password": "chosen-by-the-user"},
    )

    password = monitor.registered[USER]["inputs"]["password"]
    assert password.get(SECRET_SIG) and password["value"] == "chosen-by-the-user"
    assert "secret-notes-db-password-value" not in monitor.registered


def test_public_adds_the_all_users_invoker_and_flags_set_the_rest(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow()
    deployment = deploy(flow, primitives, public=True, memory="2Gi", ingress="internal", env={"MODE": "prod"})
    run_program(primitives, project="my-project", deployment=deployment, image=IMAGE)

    (invoker,) = by_type(monitor, "gcp:cloudrunv2/serviceIamMember:ServiceIamMember").values()
    assert invoker["inputs"] == {
        "name": "notes-dev",
        "location": "us-central1",
        "project": "my-project",
        "role": "roles/run.invoker",
        "member": "allUsers",
    }
    inputs = monitor.registered["service"]["inputs"]
    assert inputs["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    (container,) = inputs["template"]["containers"]
    assert container["resources"]["limits"]["memory"] == "2Gi"
    assert {"name": "MODE", "value": "prod"} in container["envs"]


def test_the_apis_are_enabled_and_never_disabled_on_destroy(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow()
    run_program(primitives, project="my-project", deployment=deploy(flow, primitives), image=IMAGE)

    enabled = {r["inputs"]["service"]: r["inputs"] for r in by_type(monitor, "gcp:projects/service:Service").values()}
    assert set(enabled) == {
        "sqladmin.googleapis.com",
        "run.googleapis.com",
        "artifactregistry.googleapis.com",
        "cloudbuild.googleapis.com",
        "iam.googleapis.com",
        "cloudtrace.googleapis.com",
        "telemetry.googleapis.com",
        "secretmanager.googleapis.com",
        "cloudresourcemanager.googleapis.com",
    }
    assert all(i["disableOnDestroy"] is False and i["project"] == "my-project" for i in enabled.values())
    # Data resources wait for their API.
    api_urns = {r["urn"] for r in by_type(monitor, "gcp:projects/service:Service").values()}
    assert api_urns <= set(monitor.registered["my-project:notes-db"]["dependencies"])
    repository = monitor.registered["image-repository"]["inputs"]
    assert repository == {
        "repositoryId": "bfctl-notes-dev",
        "format": "DOCKER",
        "location": "us-central1",
        "project": "my-project",
        "description": "Images of the flow, pushed by bfctl; deleted with the stack",
    }


def test_a_vpc_network_gives_the_service_direct_vpc_egress(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow()
    deployment = deploy(flow, primitives, network="prod", subnetwork="run-subnet", vpc_egress="all-traffic")
    run_program(primitives, project="my-project", deployment=deployment, image=IMAGE)
    assert monitor.registered["service"]["inputs"]["template"]["vpcAccess"] == {
        "networkInterfaces": [{"network": "prod", "subnetwork": "run-subnet"}],
        "egress": "ALL_TRAFFIC",
    }


def test_without_manage_apis_the_stack_enables_none(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow()
    run_program(primitives, project="my-project", deployment=deploy(flow, primitives), image=IMAGE, manage_apis=False)

    assert not by_type(monitor, "gcp:projects/service:Service")
    assert {"my-project:notes-db", "image-repository", "service"} <= set(monitor.registered)


def test_without_an_image_everything_but_the_service_is_made(monitor: RecordingMonitor) -> None:
    flow, primitives = notes_flow()
    exports = run_program(primitives, project="my-project", deployment=deploy(flow, primitives), image=None)

    assert "service" not in monitor.registered and "service" not in exports
    assert {"image-repository", "service-account", "secret-notes-db-password"} <= set(monitor.registered)
    assert exports["deployment"]["account"] == "notes-dev-run@my-project.iam.gserviceaccount.com"


def test_sinks_get_only_their_own_roles(monitor: RecordingMonitor) -> None:
    app = Flow()
    bucket = GCSBucket("my-project", "raw-events", "events/rows.json", FileFormat.JSON)
    archive = GCSBucket("my-project", "archive")
    table = BigQueryTable(BigQueryDataset("my-project", "analytics"), "events")
    topic = GCPPubSubTopic("my-project", "clicks")
    app.manage(archive, bucket, table.dataset, table, topic)
    for route, sink in (("/raw", bucket), ("/table", table), ("/topic", topic)):

        @app.collector(route=route, method="POST", sink=sink)
        def collect(n: int) -> dict[str, int]:
            return {"n": n}

        collect.__name__ = f"collect{route.replace('/', '_')}"
    primitives = declared_primitives(app, "gcp")
    run_program(primitives, project="my-project", deployment=deploy(app, primitives), image=IMAGE)

    roles = {
        name: (r["type"].split(":")[1], r["inputs"]["role"])
        for name, r in monitor.registered.items()
        if "role" in r["inputs"] and not name.startswith("build-")  # the build account's: test_build_identity
    }
    assert roles == {
        "grant-storage.objectCreator-gcs-raw-events": ("storage/bucketIAMMember", "roles/storage.objectCreator"),
        "grant-storage.objectViewer-gcs-archive": ("storage/bucketIAMMember", "roles/storage.objectViewer"),
        "grant-bigquery.dataEditor-my-project.analytics": ("bigquery/datasetIamMember", "roles/bigquery.dataEditor"),
        "grant-pubsub.publisher-projects-my-project-topics-clicks": (
            "pubsub/topicIAMMember",
            "roles/pubsub.publisher",
        ),
        "grant-cloudtrace.agent-project": ("projects/iAMMember", "roles/cloudtrace.agent"),
    }
    assert monitor.registered["grant-storage.objectCreator-gcs-raw-events"]["inputs"]["bucket"] == "raw-events"
    assert monitor.registered["grant-bigquery.dataEditor-my-project.analytics"]["inputs"]["datasetId"] == "analytics"
    assert monitor.registered["grant-pubsub.publisher-projects-my-project-topics-clicks"]["inputs"]["topic"] == "clicks"
    # No Cloud SQL, no secrets: neither their roles nor their APIs.
    services = {r["inputs"]["service"] for r in by_type(monitor, "gcp:projects/service:Service").values()}
    assert "sqladmin.googleapis.com" not in services and "secretmanager.googleapis.com" not in services
