"""The Pulumi program of a gcp stack: one pulumi-gcp resource per managed primitive.

Each resource's Pulumi name is its primitive's id, so renaming a primitive in code is a
replace (delete the old, create the new), never a silent second copy; each resource's
cloud name is set explicitly, so Pulumi does not add a random suffix, and a resource that
must be replaced is deleted before its successor is created (the two cannot share the
name at the same time). A child refers to its
parent's resource outputs (``instance=instance.name``), which is how Pulumi learns the
order to create and delete them in. Each primitive exports its outputs under its id.

Imported only when the gcp target runs: it imports pulumi and pulumi_gcp.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import pulumi
import pulumi_gcp as gcp
import pulumi_random

from bfctl.providers.gcp import service, streams
from bfctl.providers.gcp.deploy import SECRETS_OUTPUT, Deployment, apis, stack_secrets
from bfctl.providers.gcp.existing import existing_outputs, made_or_named, named_outputs
from bfctl.providers.plan import order_by_parents
from buildflow.dependencies.sqlalchemy import iam_auth
from buildflow.io.gcp import (
    BigQueryDataset,
    BigQueryTable,
    CloudSQLDatabase,
    CloudSQLInstance,
    CloudSQLUser,
    GCPPubSubSubscription,
    GCPPubSubTopic,
    GCSBucket,
    GCSFileChangeStream,
)
from buildflow.io.primitive import Primitive
from buildflow.secrets import Secret
from buildflow.types.bigquery_fields import table_schema

Made = Mapping[str, pulumi.CustomResource]
Built = tuple[pulumi.CustomResource, dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class _Context:
    """What every builder may need besides its primitive and the resources made before it."""

    #: The API enablements; every resource is made after them.
    apis: Sequence[pulumi.Resource] = ()
    secret_values: Mapping[str, pulumi.Output[str]] = dataclasses.field(default_factory=dict)
    deployment: Deployment | None = None
    image: str | None = None
    #: The instances whose databases the flow logs in to with IAM (``enable_iam_auth``).
    iam_instances: frozenset[str] = frozenset()
    tag: str | None = None
    redeploy: str | None = None


#: Cloud SQL refuses to drop a PostgreSQL database or role while other roles own objects in
#: it (the app's tables), so on PostgreSQL these are abandoned rather than deleted: they go
#: with their instance. Removing only a database or user from the flow leaves it in place.
_POSTGRES_CHILD_DELETION = "ABANDON"
#: The database flag without which Cloud SQL for PostgreSQL refuses every IAM login.
IAM_FLAG = "cloudsql.iam_authentication"


def _named(after: Sequence[pulumi.Resource]) -> pulumi.ResourceOptions:
    """Options of a resource whose cloud name is fixed by the flow, made once ``after`` are (the APIs)."""
    return pulumi.ResourceOptions(delete_before_replace=True, depends_on=list(after))


def _instance(p: CloudSQLInstance, made: Made, ctx: _Context) -> Built:
    settings = {**p.settings.to_dict(), "edition": p.edition}
    if p.primitive_id() in ctx.iam_instances:  # on, whatever the flow's own flags said of it
        flags = [f for f in settings.get("database_flags") or [] if f.get("name") != IAM_FLAG]
        settings["database_flags"] = [*flags, {"name": IAM_FLAG, "value": "on"}]
    r = gcp.sql.DatabaseInstance(
        p.primitive_id(),
        name=p.instance_name,
        project=p.project_id,
        region=p.region,
        database_version=p.database_version,
        # Plain snake_case dicts, as pulumi-gcp's *ArgsDict; the edition always set, as its
        # default depends on the version and may refuse the tier.
        settings=cast(Any, settings),
        # pulumi-gcp defaults this to true; BuildFlow made it false: always set it from the flow.
        deletion_protection=p.deletion_protection,
        opts=_named(ctx.apis),
    )
    return r, {
        **named_outputs(p),
        "connection_name": r.connection_name,
        "public_ip": r.public_ip_address,
        "private_ip": r.private_ip_address,
        "instance_name": r.name,
    }


def _child_deletion(instance: CloudSQLInstance) -> str | None:
    return _POSTGRES_CHILD_DELETION if instance.engine == "postgres" else None


def _instance_of(p: CloudSQLInstance, made: Made) -> dict[str, Any]:
    """The name and connection name of a database's or user's instance, made by the stack or existing."""
    return {
        "name": made_or_named(made, p, "name", p.instance_name),
        "connection_name": made_or_named(made, p, "connection_name", p.connection_name()),
    }


def _database(p: CloudSQLDatabase, made: Made, ctx: _Context) -> Built:
    instance = _instance_of(p.instance, made)
    r = gcp.sql.Database(
        p.primitive_id(),
        name=p.database_name,
        instance=instance["name"],
        project=p.instance.project_id,
        deletion_policy=_child_deletion(p.instance),
        opts=_named(ctx.apis),
    )
    outputs = {**named_outputs(p), "connection_name": instance["connection_name"], "database": r.name}
    if ctx.deployment is not None and p in ctx.deployment.iam_databases:  # whom the service logs in as
        outputs["iam_user"] = ctx.deployment.iam_user
    return r, outputs


def _user(p: CloudSQLUser, made: Made, ctx: _Context) -> Built:
    instance = _instance_of(p.instance, made)
    r = gcp.sql.User(
        p.primitive_id(),
        name=p.user_name,
        instance=instance["name"],
        project=p.instance.project_id,
        # A Secret's value is the stack's (given or generated at the first apply), the one its
        # Secret Manager secret holds; a literal is BuildFlow's way, kept working.
        password=ctx.secret_values[p.password.name]
        if isinstance(p.password, Secret)
        else pulumi.Output.secret(p.password),
        deletion_policy=_child_deletion(p.instance),
        opts=_named(ctx.apis),
    )
    return r, {**named_outputs(p), "connection_name": instance["connection_name"], "user": r.name}


def _dataset(p: BigQueryDataset, made: Made, ctx: _Context) -> Built:
    r = gcp.bigquery.Dataset(p.primitive_id(), dataset_id=p.dataset_name, project=p.project_id, opts=_named(ctx.apis))
    return r, {**named_outputs(p), "dataset_id": r.dataset_id, "location": r.location}


def _table(p: BigQueryTable, made: Made, ctx: _Context) -> Built:
    dataset_id = made_or_named(made, p.dataset, "dataset_id", p.dataset.dataset_name)
    schema = json.dumps(table_schema(p.schema)) if p.schema is not None else None
    r = gcp.bigquery.Table(
        p.primitive_id(),
        dataset_id=dataset_id,
        table_id=p.table_name,
        project=p.dataset.project_id,
        schema=schema,
        # pulumi-gcp defaults this to true; BuildFlow's destroy_protection defaults to false.
        deletion_protection=p.destroy_protection,
        opts=_named(ctx.apis),
    )
    return r, {**named_outputs(p), "dataset_id": r.dataset_id}


def _bucket(p: GCSBucket, made: Made, ctx: _Context) -> Built:
    r = gcp.storage.Bucket(
        p.primitive_id(),
        name=p.bucket_name,
        project=p.project_id,
        location=p.bucket_region,
        force_destroy=p.force_destroy,
        # Organizations made since May 2024 enforce both (creating without them fails with 412);
        # the runtime's access is IAM on the bucket, never an object ACL or a public object.
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        opts=_named(ctx.apis),
    )
    return r, {**named_outputs(p), "bucket_name": r.name, "url": r.url}


def _topic(p: GCPPubSubTopic, made: Made, ctx: _Context) -> Built:
    r = gcp.pubsub.Topic(p.primitive_id(), name=p.topic_name, project=p.project_id, opts=_named(ctx.apis))
    return r, {**named_outputs(p), "topic_name": r.name}


def _subscription(p: GCPPubSubSubscription, made: Made, ctx: _Context) -> Built:
    return streams.subscription(p, made, _named(ctx.apis))


def _notifications(p: GCSFileChangeStream, made: Made, ctx: _Context) -> Built:
    return streams.notifications(p, made, _named(ctx.apis))


_BUILDERS: dict[type, Callable[[Any, Made, _Context], Built]] = {
    CloudSQLInstance: _instance,
    CloudSQLDatabase: _database,
    CloudSQLUser: _user,
    BigQueryDataset: _dataset,
    BigQueryTable: _table,
    GCSBucket: _bucket,
    GCPPubSubTopic: _topic,
    GCPPubSubSubscription: _subscription,
    GCSFileChangeStream: _notifications,
}


def declare(primitives: Sequence[Primitive], ctx: _Context) -> dict[str, pulumi.CustomResource]:
    """Register one resource per primitive (parents first) and export its outputs, under its id
    and under the id of every portable primitive it stands for (a Queue: its topic's, then its
    subscription's). The service is given those, and the outputs of what the flow uses as it exists."""
    made: dict[str, pulumi.CustomResource] = {}
    exports: dict[str, dict[str, Any]] = {}
    aliases: dict[str, dict[str, Any]] = {}
    for primitive in order_by_parents(primitives):
        resource, exports[primitive.primitive_id()] = _BUILDERS[type(primitive)](primitive, made, ctx)
        made[primitive.primitive_id()] = resource
        pulumi.export(primitive.primitive_id(), exports[primitive.primitive_id()])
        for alias in primitive.stands_for:
            aliases.setdefault(alias, {}).update(exports[primitive.primitive_id()])
    for alias, values in aliases.items():
        pulumi.export(alias, values)
    if ctx.deployment is not None:
        given = {**existing_outputs(list(ctx.deployment.existing)), **exports, **aliases}
        service.declare(ctx.deployment, made, ctx.secret_values, given, ctx.image, ctx.tag, ctx.apis, ctx.redeploy)
    return made


def program(
    primitives: Sequence[Primitive],
    *,
    project: str | None = None,
    deployment: Deployment | None = None,
    image: str | None = None,
    tag: str | None = None,
    redeploy: str | None = None,
    given_secrets: Mapping[str, str] | None = None,
    manage_apis: bool = True,
) -> Callable[[], None]:
    """The inline program the Automation API runs for ``primitives``.

    ``deployment`` adds the Cloud Run service and what it needs (the service itself only with
    an ``image``, built as ``tag`` when bfctl built it; ``redeploy`` forces a new revision of
    it). A Secret's value is the one ``given_secrets`` has for its name (its variable was set
    at apply), else a random one generated at the first apply and kept, encrypted, in the
    stack's state. Without ``manage_apis`` the stack enables no API (someone else has).
    """
    frozen = list(primitives)
    given = dict(given_secrets or {})

    def run() -> None:
        names = apis(frozen, deployment)
        ctx = _Context(
            apis=service.enable_apis(project, names) if project and names and manage_apis else [],
            secret_values={s.name: _secret_value(s.name, given.get(s.name)) for s in stack_secrets(frozen, deployment)},
            deployment=deployment,
            image=image,
            iam_instances=frozenset(
                p.instance.primitive_id() for p in frozen if isinstance(p, CloudSQLDatabase) and iam_auth(p)
            ),
            tag=tag,
            redeploy=redeploy,
        )
        declare(frozen, ctx)
        if ctx.secret_values:  # for what bfctl runs against the stack itself (migrations), never shown
            pulumi.export(SECRETS_OUTPUT, pulumi.Output.secret(pulumi.Output.all(**ctx.secret_values)))

    return run


def _secret_value(name: str, given: str | None) -> pulumi.Output[str]:
    if given:
        return pulumi.Output.secret(given)
    return pulumi_random.RandomPassword(f"secret-{name}-value", length=32, special=False).result
