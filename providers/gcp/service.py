"""The Pulumi resources that run the flow on Cloud Run, beside its data resources.

The image repository, the service account and exactly its role bindings, the flow's secrets
in Secret Manager, the Cloud Run (v2) service and, only when the service is public, the
``allUsers`` invoker binding. The service is declared only once an image exists: the first
apply makes everything else (the repository included), the image is pushed, and the next
step of the same apply adds the service.

Imported only when the gcp target runs: it imports pulumi and pulumi_gcp.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import pulumi
import pulumi_gcp as gcp

from bfctl.providers.gcp import build_identity, iam_users
from bfctl.providers.gcp.deploy import INGRESS, VPC_EGRESS, Deployment, Grant
from bfctl.providers.gcp.deployed import BUILD_SOURCES, DEPLOYMENT_OUTPUT, SERVICE_OUTPUT
from bfctl.providers.gcp.existing import made_or_named
from buildflow.deployed import HEALTH_PATH, OUTPUTS_ENV, TRACES_ENV, WORKERS_ENV
from buildflow.io.gcp import (
    BigQueryDataset,
    CloudSQLInstance,
    GCPPubSubSubscription,
    GCPPubSubTopic,
    GCSBucket,
    GCSFileChangeStream,
)

Made = Mapping[str, pulumi.CustomResource]
#: Pulumi names of the deployment's own resources (the plan shows them under these).
REPOSITORY_NAME, ACCOUNT_NAME, SERVICE_NAME, INVOKER_NAME = (
    "image-repository",
    "service-account",
    "service",
    "public-invoker",
)
#: The service template's label a retried deploy sets to a new value: Cloud Run makes a revision
#: only of a changed template, and Pulumi's provider sends nothing for an unchanged one. Ignored
#: by every other deploy, so it never makes a revision of its own.
REDEPLOY_LABEL = "bfctl-redeploy"


def enable_apis(project: str, names: Sequence[str]) -> list[pulumi.CustomResource]:
    """One ``projects.Service`` per API; never disabled on destroy (other things may use it)."""
    return [
        gcp.projects.Service(f"api-{name.split('.')[0]}", project=project, service=name, disable_on_destroy=False)
        for name in names
    ]


def secret_name(deployment: Deployment, name: str) -> str:
    """The Secret Manager id of the flow's secret ``name`` (stacks of one project do not share)."""
    return f"{deployment.name}-{name}"[:255]


def declare(
    deployment: Deployment,
    made: Made,
    secret_values: Mapping[str, pulumi.Output[str]],
    outputs: Mapping[str, Mapping[str, Any]],
    image: str | None,
    tag: str | None,
    apis: Sequence[pulumi.Resource],
    redeploy: str | None = None,
) -> None:
    """Register the deployment's resources; the service itself only when ``image`` is given.

    The service's outputs name its image and the tag it was built as: the next plan, from any
    checkout, reads them from the stack to keep the service on that image. The service is made
    after the account's role bindings and the secret versions it reads; ``redeploy`` forces a
    new revision of an unchanged template (one refused before those bindings took effect)."""
    after_apis = pulumi.ResourceOptions(depends_on=list(apis))
    project, region = deployment.project, deployment.region
    repository = gcp.artifactregistry.Repository(
        REPOSITORY_NAME,
        repository_id=deployment.repository_id,
        format="DOCKER",
        location=region,
        project=project,
        description="Images of the flow, pushed by bfctl; deleted with the stack",
        opts=after_apis,
    )
    sources = build_identity.declare(deployment, repository, apis)
    account = gcp.serviceaccount.Account(
        ACCOUNT_NAME,
        account_id=deployment.account_id,
        display_name=f"{deployment.name} on Cloud Run",
        description="The identity the flow runs as; bfctl grants it only what the flow uses",
        project=project,
        opts=after_apis,
    )
    bindings: list[pulumi.Resource] = [_grant(g, made, account.member, project) for g in deployment.grants]
    bindings += iam_users.declare(deployment, made, account)
    env: list[dict[str, Any]] = []
    for secret in deployment.secrets:
        stored = gcp.secretmanager.Secret(
            f"secret-{secret.name}",
            secret_id=secret_name(deployment, secret.name),
            replication={"auto": {}},
            project=project,
            opts=after_apis,
        )
        version = gcp.secretmanager.SecretVersion(
            f"secret-{secret.name}-version", secret=stored.id, secret_data=secret_values[secret.name]
        )
        access = gcp.secretmanager.SecretIamMember(
            f"grant-secretAccessor-{secret.name}",
            secret_id=stored.secret_id,
            project=project,
            role="roles/secretmanager.secretAccessor",
            member=account.member,
        )
        bindings += [version, access]
        ref = {"secret": stored.secret_id, "version": version.version}
        env.append({"name": secret.env_var, "value_source": {"secret_key_ref": ref}})
    pulumi.export(
        DEPLOYMENT_OUTPUT,
        {
            "repository": repository.name,
            "account": account.email,
            "secrets": [s.name for s in deployment.secrets],
            BUILD_SOURCES: sources.name,
        },
    )
    if image is None:
        return
    service = _service(deployment, image, account.email, env, outputs, [repository, *apis, *bindings], redeploy)
    if deployment.settings.public:
        gcp.cloudrunv2.ServiceIamMember(
            INVOKER_NAME,
            name=service.name,
            location=region,
            project=project,
            role="roles/run.invoker",
            member="allUsers",
        )
    built_as = {"tag": tag} if tag else {}
    pulumi.export(
        SERVICE_OUTPUT,
        {"url": service.uri, "name": service.name, "image": image, **built_as, "account": account.email},
    )


def _service(
    deployment: Deployment,
    image: str,
    account_email: pulumi.Output[str],
    secret_env: list[dict[str, Any]],
    outputs: Mapping[str, Mapping[str, Any]],
    after: list[pulumi.Resource],
    redeploy: str | None,
) -> gcp.cloudrunv2.Service:
    s = deployment.settings
    plain = {
        OUTPUTS_ENV: pulumi.Output.json_dumps({"target": "gcp", "outputs": outputs}),
        WORKERS_ENV: str(s.workers),
        "GOOGLE_CLOUD_PROJECT": deployment.project,
        # sampled traces go to Cloud Trace (a flow's env may set OTEL_SDK_DISABLED=true to keep them)
        TRACES_ENV: "cloudtrace",
        **s.env,
    }
    envs = [{"name": k, "value": v} for k, v in plain.items()] + secret_env
    template = {
        "service_account": account_email,
        "scaling": {"min_instance_count": s.min_instances, "max_instance_count": s.max_instances},
        "max_instance_request_concurrency": s.concurrency,
        "containers": [
            {
                "image": image,
                "ports": {"container_port": 8080},
                "resources": {"limits": {"cpu": str(s.cpu), "memory": s.memory}, "cpu_idle": not s.cpu_always},
                "envs": envs,
                "startup_probe": {
                    "http_get": {"path": HEALTH_PATH},
                    "period_seconds": 2,
                    "failure_threshold": 30,
                    "timeout_seconds": 1,
                },
            }
        ],
    }
    if s.network or s.subnetwork:
        interface = {k: v for k, v in (("network", s.network), ("subnetwork", s.subnetwork)) if v}
        template["vpc_access"] = {"network_interfaces": [interface], "egress": VPC_EGRESS[s.vpc_egress]}
    if redeploy:
        template["labels"] = {REDEPLOY_LABEL: redeploy}
    return gcp.cloudrunv2.Service(
        SERVICE_NAME,
        name=deployment.name,
        location=deployment.region,
        project=deployment.project,
        ingress=INGRESS[s.ingress],
        # pulumi-gcp defaults this to true, which makes `bfctl destroy` fail: the stack owns it.
        deletion_protection=False,
        template=cast(Any, template),  # plain snake_case dicts, as pulumi-gcp's *ArgsDict
        opts=pulumi.ResourceOptions(
            depends_on=after, ignore_changes=[] if redeploy else [f'template.labels["{REDEPLOY_LABEL}"]']
        ),
    )


def _grant(grant: Grant, made: Made, member: pulumi.Output[str], project: str) -> pulumi.CustomResource:
    """One role binding of the account, on the resource the grant names: one the stack makes, or
    one the flow uses as it exists (named, not referred to)."""
    target = grant.primitive
    if isinstance(target, CloudSQLInstance) or target is None:
        condition = (
            gcp.projects.IAMMemberConditionArgs(title=grant.condition[0], expression=grant.condition[1])
            if grant.condition
            else None
        )
        on = grant.project or project
        return gcp.projects.IAMMember(grant.name, project=on, role=grant.role, member=member, condition=condition)
    if isinstance(target, BigQueryDataset):
        return gcp.bigquery.DatasetIamMember(
            grant.name,
            dataset_id=made_or_named(made, target, "dataset_id", target.dataset_name),
            project=target.project_id,
            role=grant.role,
            member=member,
        )
    if isinstance(target, GCSBucket):
        bucket = made_or_named(made, target, "name", target.bucket_name)
        return gcp.storage.BucketIAMMember(grant.name, bucket=bucket, role=grant.role, member=member)
    if isinstance(target, GCPPubSubSubscription):
        return gcp.pubsub.SubscriptionIAMMember(
            grant.name,
            subscription=made_or_named(made, target, "name", target.subscription_name),
            project=target.project_id,
            role=grant.role,
            member=member,
        )
    if isinstance(target, GCSFileChangeStream):  # its subscription, made before its notification
        made_stream = made.get(target.primitive_id())
        return gcp.pubsub.SubscriptionIAMMember(
            grant.name,
            subscription=target.subscription.subscription_name,
            project=target.gcs_bucket.project_id,
            role=grant.role,
            member=member,
            opts=pulumi.ResourceOptions(depends_on=[made_stream] if made_stream is not None else []),
        )
    if isinstance(target, GCPPubSubTopic):
        return gcp.pubsub.TopicIAMMember(
            grant.name,
            topic=made_or_named(made, target, "name", target.topic_name),
            project=target.project_id,
            role=grant.role,
            member=member,
        )
    raise TypeError(f"no role binding for {type(target).__name__}")
