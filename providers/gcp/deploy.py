"""What the flow's Cloud Run service is made of, decided before Pulumi runs.

One service serves every endpoint and collector of the flow. Its size and scaling come from
the flow's BuildFlow options, combined over its services and collectors (each is a part of
every instance, so the instance takes the most any of them asks for); what BuildFlow had no
option for comes from ``[tool.buildflow.gcp]`` in pyproject.toml, and the command's flags win
over both. The roles of its service account follow from the primitives the flow uses: only
those roles, only on those resources. Pure data: no Pulumi here, so the CLI can compute and
check it cheaply, and the program (``bfctl.providers.gcp.service``) only declares it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bfctl.providers.connection_budget import ConnectionBudgetError, connection_budget
from bfctl.providers.gcp.errors import GCPSettingsError
from buildflow.dependencies.sqlalchemy import engine_pools, iam_auth
from buildflow.deployed import POOLS_ENV
from buildflow.io.gcp import (
    BigQueryDataset,
    BigQueryTable,
    CloudSQLDatabase,
    CloudSQLInstance,
    CloudSQLTable,
    CloudSQLUser,
    GCPPubSubSubscription,
    GCPPubSubTopic,
    GCSBucket,
    GCSFileChangeStream,
)
from buildflow.io.primitive import Primitive
from buildflow.middleware import middleware_secrets
from buildflow.processors import ProcessorOptions, max_replicas_given
from buildflow.secrets import Secret

#: Ingress names users write → Cloud Run v2's values.
INGRESS = {
    "all": "INGRESS_TRAFFIC_ALL",
    "internal": "INGRESS_TRAFFIC_INTERNAL_ONLY",
    "internal-and-cloud-load-balancing": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
}
#: ``vpc_egress`` values and Cloud Run's names for them.
VPC_EGRESS = {"private-ranges-only": "PRIVATE_RANGES_ONLY", "all-traffic": "ALL_TRAFFIC"}
#: CPU counts Cloud Run offers per instance; a flow's ``num_cpus`` is rounded up to one of them.
CPU_STEPS = (1, 2, 4, 6, 8)
#: Cloud Run's ceilings for one service.
MAX_CONCURRENCY = 1000
#: Cloud Run's own ``max_instance_count`` for a service that sets none.
CLOUD_RUN_MAX_INSTANCES = 100
#: The least memory (MiB) Cloud Run gives an instance of so many CPUs.
_MIN_MEMORY = {4: 2048, 6: 4096, 8: 4096}
#: The fewest CPUs Cloud Run gives an instance of more than so much memory (MiB), largest first.
_MIN_CPUS = ((24 * 1024, 8), (16 * 1024, 6), (8 * 1024, 4), (4 * 1024, 2))
_MAX_MEMORY = 32 * 1024
#: Variables Cloud Run or bfctl set themselves; a user's ``env`` may not name them.
_RESERVED_ENV = re.compile(r"^(PORT|K_SERVICE|K_REVISION|K_CONFIGURATION|GOOGLE_CLOUD_PROJECT|BUILDFLOW_.*|BFCTL_.*)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ACCOUNT_EMAIL = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.:-]+\.gserviceaccount\.com$")
_MEMORY = re.compile(r"^[1-9][0-9]*(Mi|Gi)$")
_APIS_ALWAYS = (
    "run.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "iam.googleapis.com",
    # the service's traces: Cloud Trace, written through its OTLP endpoint (the Telemetry API)
    "cloudtrace.googleapis.com",
    "telemetry.googleapis.com",
)
#: The service's account writes its traces (the Telemetry API's ``telemetry.traces.write``).
TRACE_GRANT_ROLE = "roles/cloudtrace.agent"


@dataclasses.dataclass(frozen=True)
class ServiceSettings:
    """The Cloud Run service's size, scaling and exposure."""

    cpu: int
    memory: str
    min_instances: int
    max_instances: int
    concurrency: int
    workers: int
    ingress: str
    public: bool
    env: Mapping[str, str]
    #: CPU allocated between requests too: a consumer pulls while no request comes in.
    cpu_always: bool = False
    #: No part of the flow set ``max_replicas``: ``max_instances`` is Cloud Run's default.
    max_instances_default: bool = False
    #: What the connection budget chose (pool sizes, fewer max instances) and why, for the plan.
    connection_notes: tuple[str, ...] = ()
    #: Direct VPC egress: the VPC network and/or subnetwork the instances send traffic into (a Cloud
    #: SQL instance with only a private IP is reached so), and which traffic goes there.
    network: str | None = None
    subnetwork: str | None = None
    vpc_egress: str = "private-ranges-only"


@dataclasses.dataclass(frozen=True)
class Grant:
    """One role of the service's account, on one resource (``primitive``) or the project (None)."""

    role: str
    primitive: Primitive | None = None
    #: An IAM condition limiting a project-level role to one resource (Cloud SQL instances).
    condition: tuple[str, str] | None = None
    #: The project of a project-level role when not the service's (BigQuery runs a query's job
    #: in the queried table's project).
    project: str | None = None

    @property
    def name(self) -> str:
        """The Pulumi name of the binding: stable, and telling what it grants on what."""
        on = self.primitive.primitive_id() if self.primitive is not None else f"project {self.project or ''}".strip()
        return f"grant-{self.role.removeprefix('roles/')}-{re.sub(r'[^A-Za-z0-9.-]+', '-', on)}"


@dataclasses.dataclass(frozen=True)
class Deployment:
    """Everything the stack needs to run the flow on Cloud Run, but the image."""

    #: The flow as ``bfctl serve`` is given it inside the image (``main:app``).
    target: str
    name: str
    project: str
    region: str
    settings: ServiceSettings
    grants: tuple[Grant, ...]
    secrets: tuple[Secret, ...]
    #: The account Cloud Build runs as when ``build_service_account`` names one; else the stack makes one.
    build_service_account: str | None = None
    #: What the flow uses without the stack making it: the service is given outputs for those too.
    existing: tuple[Primitive, ...] = ()
    #: The stack's databases the flow logs in to as the service's account (``enable_iam_auth``).
    iam_databases: tuple[CloudSQLDatabase, ...] = ()

    @property
    def iam_user(self) -> str:
        """The account's database user, named as Cloud SQL for PostgreSQL names a service
        account's: its email without ``.gserviceaccount.com``."""
        return f"{self.account_id}@{self.project}.iam"

    @property
    def account_id(self) -> str:
        """The service account's id (6 to 30 characters, a letter first): one per service name, so
        that two long names sharing their first characters never share an account."""
        return fitted(f"{self.name}-run" if len(self.name) >= 2 else f"bfctl-{self.name}-run", 30)

    @property
    def repository_id(self) -> str:
        """The Artifact Registry repository of the stack's images: its own, so that one stack's
        create does not meet another's repository and its destroy deletes no other stack's images."""
        return repository_id(self.name)

    @property
    def build_account(self) -> str:
        """The email of the account Cloud Build runs as for the stack: the one named, else its own."""
        return self.build_service_account or account_email(build_account_id(self.name), self.project)

    @property
    def sources_bucket(self) -> str:
        """The stack's bucket of Cloud Build sources."""
        return sources_bucket(self.project, self.name)


def repository_id(service: str) -> str:
    """The image repository of the service named ``service`` (at most 63 characters, a letter first)."""
    return fitted(f"bfctl-{service}", 63)


def fitted(name: str, limit: int) -> str:
    """``name`` when it fits in ``limit`` characters, else its start and a hash of all of it: names
    cut to the same start stay distinct, and ``name`` is a letter, then letters, digits and hyphens."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - len(digest) - 1].rstrip('-')}-{digest}"


def named_build_account(table: Mapping[str, Any], project: str) -> str | None:
    """``build_service_account`` of ``[tool.buildflow.gcp]``: an account's email, checked before
    anything is built, that Cloud Build runs as instead of the one the stack makes."""
    account = table.get("build_service_account")
    if account is not None and (not isinstance(account, str) or not _ACCOUNT_EMAIL.match(account)):
        raise GCPSettingsError(
            "build_service_account in [tool.buildflow.gcp] must be a service account's email such as "
            f'"builder@{project}.iam.gserviceaccount.com", not {account!r}'
        )
    return account


def build_account_id(service: str) -> str:
    """The id of the account the stack makes for Cloud Build (6 to 30 characters), apart from the
    service's own: a build reads its source, writes logs and pushes, and the flow does none of it."""
    return fitted(f"{service}-build", 30)


def account_email(account_id: str, project: str) -> str:
    """A service account's email (a domain-scoped project ``example.com:p`` puts its domain last)."""
    domain, _, name = project.rpartition(":")
    return f"{account_id}@{name}{f'.{domain}' if domain else ''}.iam.gserviceaccount.com"


def sources_bucket(project: str, service: str) -> str:
    """The bucket of the stack's Cloud Build sources: bucket names are global, so it names the
    project and the stack's service (lowercase letters, digits and hyphens, at most 63 characters)."""
    return fitted(re.sub(r"[^a-z0-9-]+", "-", f"{project}-{service}-build-sources"), 63)


def apis(primitives: Sequence[Primitive], deployment: Deployment | None) -> tuple[str, ...]:
    """The Google APIs the stack's resources need, in a stable order."""
    needed: list[str] = []
    kinds = {type(p) for p in primitives}
    if kinds & {CloudSQLInstance, CloudSQLDatabase, CloudSQLUser}:
        needed.append("sqladmin.googleapis.com")
    if kinds & {BigQueryDataset, BigQueryTable}:
        needed.append("bigquery.googleapis.com")
    if kinds & {GCSBucket, GCSFileChangeStream}:
        needed.append("storage.googleapis.com")
    if kinds & {GCPPubSubTopic, GCPPubSubSubscription, GCSFileChangeStream}:
        needed.append("pubsub.googleapis.com")
    if deployment is not None:
        needed.extend(_APIS_ALWAYS)
        if deployment.secrets:
            needed.append("secretmanager.googleapis.com")
    dead_letters = any(isinstance(p, GCPPubSubSubscription) and p.dead_letter_topic is not None for p in primitives)
    if deployment is not None or dead_letters:
        # project IAM bindings, and the project number a dead-letter grant names, go through Resource Manager
        needed.append("cloudresourcemanager.googleapis.com")
    return tuple(needed)


#: The stack output holding the flow's Secret values, for what bfctl runs against the stack itself
#: (migrations); a Pulumi secret, encrypted in the state. gcp primitive ids start with a project
#: id, `gs://` or `projects/`, so none is this name.
SECRETS_OUTPUT = "_secrets"


def flow_secrets(primitives: Iterable[Primitive]) -> tuple[Secret, ...]:
    """The Secrets the flow's database users log in with, each once."""
    found = [p.password for p in primitives if isinstance(p, CloudSQLUser) and isinstance(p.password, Secret)]
    return tuple(dict.fromkeys(found))


def stack_secrets(primitives: Iterable[Primitive], deployment: Deployment | None) -> tuple[Secret, ...]:
    """Every Secret the stack keeps a value of: its database users', and when it deploys the flow
    the service's, which include them (``deployment_of`` made it from the same primitives)."""
    return deployment.secrets if deployment is not None else flow_secrets(primitives)


def grants(
    primitives: Sequence[Primitive],
    sinks: Iterable[Any],
    sources: Iterable[Any] = (),
    buckets: Iterable[Any] = (),
    existing: Sequence[Primitive] = (),
    queried: Iterable[Any] = (),
) -> tuple[Grant, ...]:
    """The roles the runtime needs for what the flow uses, each on only its resource.

    ``primitives`` are the stack's; ``existing`` what the flow uses without managing it, which
    gets roles only as the flow uses it (a table's dataset, a sink, a source, a bucket of its
    dependencies), never for being a parent. ``buckets`` are those dependencies read, write,
    list and delete objects in (``BucketDependencyBuilder``); ``queried`` the tables of
    ``AnalysisQuery`` dependencies, whose datasets are only read unless a table of theirs is a sink,
    and whose projects run the query jobs (``bigquery.jobs.create``). Cloud SQL has no per-instance role
    bindings, so the client role is granted on the project under a condition naming the instance; so
    is the instance user role (logging in with a token) where the flow logs in with ``enable_iam_auth``.
    """
    sink_ids = {s.primitive_id() for s in sinks if isinstance(s, Primitive)}
    bucket_ids = {b.primitive_id() for b in buckets if isinstance(b, Primitive)}
    query_ids = {q.primitive_id() for q in queried if isinstance(q, Primitive)}
    stack_ids = {p.primitive_id() for p in primitives}
    everything = [*primitives, *(p for p in existing if p.primitive_id() not in stack_ids)]
    pulled = list(sources)
    source_ids = {s.primitive_id() for s in pulled if isinstance(s, Primitive)}
    pulled += [p for p in everything if source_ids & set(p.stands_for)]  # what the target made for a portable one

    def ids(p: Primitive) -> set[str]:  # a portable sink or bucket is what the target made for it
        return {p.primitive_id(), *p.stands_for}

    def written_or_stack(p: Primitive) -> bool:
        return p.primitive_id() in stack_ids or bool(ids(p) & (sink_ids | bucket_ids))

    out: list[Grant] = []
    instances = [p for p in everything if isinstance(p, CloudSQLInstance)]
    for instance in instances:
        if any(isinstance(p, CloudSQLDatabase | CloudSQLUser) and p.instance is instance for p in everything):
            resource = f"projects/{instance.project_id}/instances/{instance.instance_name}"
            only = (f"only {instance.instance_name}", f'resource.name == "{resource}"')
            out.append(Grant("roles/cloudsql.client", instance, only))
            if any(isinstance(p, CloudSQLDatabase) and p.instance is instance and iam_auth(p) for p in everything):
                out.append(Grant("roles/cloudsql.instanceUser", instance, only))
    tables = [p for p in everything if isinstance(p, BigQueryTable)]
    edited = {t.dataset.primitive_id() for t in tables if not ids(t) & query_ids or ids(t) & sink_ids}
    datasets = {t.dataset.primitive_id(): t.dataset for t in tables}
    out.extend(
        Grant("roles/bigquery.dataEditor" if i in edited else "roles/bigquery.dataViewer", d)
        for i, d in datasets.items()
    )
    query_projects = {t.dataset.project_id for t in tables if ids(t) & query_ids}
    out.extend(Grant("roles/bigquery.jobUser", project=p) for p in sorted(query_projects))
    buckets_used = [b for b in everything if isinstance(b, GCSBucket) and written_or_stack(b)]
    out.extend(Grant(_bucket_role(ids(b), sink_ids, bucket_ids), b) for b in buckets_used)
    topics = [t for t in everything if isinstance(t, GCPPubSubTopic) and written_or_stack(t)]
    out.extend(Grant("roles/pubsub.publisher", t) for t in topics)
    # consumers pull their subscriptions; a notification stream's handler downloads the objects
    for source in pulled:
        if isinstance(source, GCPPubSubSubscription | GCSFileChangeStream):
            out.append(Grant("roles/pubsub.subscriber", source))
        if isinstance(source, GCSFileChangeStream):
            out.append(Grant("roles/storage.objectViewer", source.gcs_bucket))
    return tuple({g.name: g for g in out}.values())


def _bucket_role(bucket_ids_of: set[str], sink_ids: set[str], bucket_ids: set[str]) -> str:
    """A dependency's bucket is read, written, listed and deleted in; a sink's written; others read."""
    if bucket_ids_of & bucket_ids:
        return "roles/storage.objectUser"
    return "roles/storage.objectCreator" if bucket_ids_of & sink_ids else "roles/storage.objectViewer"


def _processor_options(flow: Any) -> list[ProcessorOptions]:
    """The options of each part of the flow an instance serves (services and collectors)."""
    return (
        [s.options for s in flow.services if s.endpoints]
        + [c.processor_options for c in flow.collectors]
        + [c.processor_options for c in flow.consumers]
    )


def serves_anything(flow: Any) -> bool:
    """Whether the flow has endpoints or collectors, hence a service to deploy."""
    return bool(_processor_options(flow))


def service_settings(flow: Any, table: Mapping[str, Any], flags: Mapping[str, Any]) -> ServiceSettings:
    """The service's settings: the flow's options, then ``table`` (pyproject), then ``flags``."""
    options = _processor_options(flow) or [ProcessorOptions()]
    chosen = {**{k: v for k, v in table.items() if v is not None}, **{k: v for k, v in flags.items() if v is not None}}
    cpu = _cpu(chosen.get("cpu", max(o.num_cpus for o in options)))
    memory = str(chosen.get("memory") or f"{max(512 * cpu, _MIN_MEMORY.get(cpu, 0))}Mi")
    _check_size(cpu, memory)
    ingress = str(chosen.get("ingress", "all"))
    if ingress not in INGRESS:
        raise GCPSettingsError(f"ingress {ingress!r} is not one of: {', '.join(INGRESS)}")
    workers = int(chosen.get("workers", cpu))
    if workers < 1:
        raise GCPSettingsError(f"workers must be at least 1, got {workers}")
    consumes = bool(flow.consumers)
    public = chosen.get("public", False)
    if not isinstance(public, bool):
        raise GCPSettingsError(f"public must be true or false, got {public!r}")
    network, subnetwork, vpc_egress = _vpc(chosen)
    # a pulling consumer runs only in an instance that exists: at least one, always
    min_instances = max(*(o.min_replicas for o in options), 1 if consumes else 0)
    # BuildFlow's default of 1000 is more than most projects' CPU quota lets Cloud Run start, and
    # Cloud Run refuses such a service: only a max_replicas the flow set is passed on.
    given = [o.max_replicas for o in options if max_replicas_given(o.max_replicas)]
    return ServiceSettings(
        cpu=cpu,
        memory=memory,
        min_instances=min_instances,
        max_instances=max(*given, min_instances) if given else max(CLOUD_RUN_MAX_INSTANCES, min_instances),
        concurrency=min(max(o.max_concurrent_queries for o in options), MAX_CONCURRENCY),
        workers=workers,
        ingress=ingress,
        public=public,
        env={**_env(table.get("env") or {}), **_env(flags.get("env") or {})},
        cpu_always=consumes,
        network=network,
        subnetwork=subnetwork,
        vpc_egress=vpc_egress,
        max_instances_default=not given,
    )


def _vpc(chosen: Mapping[str, Any]) -> tuple[str | None, str | None, str]:
    """``network``, ``subnetwork`` and ``vpc_egress``, checked. Either of the first two names the
    VPC (Cloud Run finds the other; with both, the subnetwork must be in the network)."""
    network, subnetwork = chosen.get("network"), chosen.get("subnetwork")
    for name, value in (("network", network), ("subnetwork", subnetwork)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise GCPSettingsError(f"{name} must be the name or path of a VPC {name}, got {value!r}")
    egress = chosen.get("vpc_egress", "private-ranges-only")
    if egress not in VPC_EGRESS:
        raise GCPSettingsError(f"vpc_egress {egress!r} is not one of: {', '.join(VPC_EGRESS)}")
    if "vpc_egress" in chosen and network is None and subnetwork is None:
        raise GCPSettingsError('vpc_egress needs a network or subnetwork to send the traffic to: set network = "..."')
    return network, subnetwork, egress


def _cpu(value: Any) -> int:
    try:
        wanted = float(value)
    except (TypeError, ValueError):
        raise GCPSettingsError(f"cpu {value!r} is not a number") from None
    for step in CPU_STEPS:
        if wanted <= step:
            return step
    raise GCPSettingsError(f"{wanted:g} CPUs is more than a Cloud Run instance has (at most {CPU_STEPS[-1]})")


def _check_size(cpu: int, memory: str) -> None:
    """Refuses a CPU and memory pair Cloud Run would refuse when the revision is made."""
    if not _MEMORY.match(memory):
        raise GCPSettingsError(f"memory {memory!r} is not a size Cloud Run takes: write it like 512Mi or 2Gi")
    mib = int(memory[:-2]) * (1024 if memory.endswith("Gi") else 1)
    if mib > _MAX_MEMORY:
        raise GCPSettingsError(f"memory {memory} is more than a Cloud Run instance has (at most 32Gi)")
    least = _MIN_MEMORY.get(cpu, 0)
    if mib < least:
        raise GCPSettingsError(
            f"Cloud Run gives {cpu} CPUs at least {least // 1024}Gi of memory: set memory to {least // 1024}Gi "
            "or more, or fewer CPUs"
        )
    fewest = next((cpus for above, cpus in _MIN_CPUS if mib > above), 1)
    if cpu < fewest:
        raise GCPSettingsError(
            f"Cloud Run gives {memory} of memory only to instances of at least {fewest} CPUs: set cpu = {fewest} "
            "or less memory"
        )


def _env(values: Any) -> dict[str, str]:
    if not isinstance(values, Mapping):
        raise GCPSettingsError("env must be a table of NAME = value pairs ([tool.buildflow.gcp.env])")
    out = {}
    for name, value in values.items():
        if not _ENV_NAME.match(str(name)):
            raise GCPSettingsError(f"env: {name!r} is not an environment variable name")
        if _RESERVED_ENV.match(str(name)):
            raise GCPSettingsError(f"env: {name} is set by Cloud Run or bfctl itself; choose another name")
        out[str(name)] = str(value)
    return out


def parse_env_flags(pairs: Sequence[str]) -> dict[str, str]:
    """``--env NAME=VALUE`` flags as a mapping."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise GCPSettingsError(f"--env {pair!r}: write it as NAME=VALUE")
        out[name] = value
    return out


def service_name(pulumi_project: str, stack: str, table: Mapping[str, Any]) -> str:
    """The Cloud Run service's name: ``[tool.buildflow.gcp] service``, else ``<project>-<stack>``.

    Lowercase letters, digits and hyphens, a letter first, at most 49 characters.
    """
    given = table.get("service")
    raw = str(given) if given else f"{pulumi_project}-{stack}"
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"flow-{name}".rstrip("-")
    if given and name != given:
        raise GCPSettingsError(
            f"service name {given!r} is not one Cloud Run takes: lowercase letters, digits and hyphens, a letter first"
        )
    return fitted(name, 49)


def check_instances(settings: ServiceSettings) -> list[str]:
    """Warnings about settings that cost money or cannot work."""
    warnings = []
    if settings.min_instances > 0:
        warnings.append(
            f"the service keeps {settings.min_instances} instance(s) running at all times (the flow's "
            "min_replicas), billed while idle; set min_replicas=0 on its services and collectors to scale to zero."
        )
    if settings.max_instances_default:
        warnings.append(
            f"the service scales to at most {settings.max_instances} instances, Cloud Run's default, not "
            "BuildFlow's default max_replicas of 1000: Cloud Run refuses more instances than the region's CPU "
            "quota allows (new projects: 10 to 200 CPUs). Set max_replicas on the flow's services and "
            "collectors to choose."
        )
    elif settings.max_instances > CLOUD_RUN_MAX_INSTANCES:
        warnings.append(
            f"the flow's max_replicas lets the service scale to {settings.max_instances} instances of "
            f"{settings.cpu} CPU(s); Cloud Run refuses the service if that is more than the region's CPU quota "
            "allows (new projects: 10 to 200 CPUs): lower max_replicas or ask for more quota."
        )
    warnings.extend(settings.connection_notes)
    if settings.concurrency == 1 and settings.workers > 1:
        warnings.append("with max_concurrent_queries=1 an instance takes one request at a time: workers=1 is enough.")
    return warnings


def _sink_primitives(flow: Any, dependency_sinks: Sequence[Primitive]) -> list[Any]:
    """What the flow's collectors, consumers and sink dependencies write to."""
    return [*(c.sink_primitive for c in [*flow.collectors, *flow.consumers]), *dependency_sinks]


def within_connections(settings: ServiceSettings, used: Sequence[Primitive], sinks: Sequence[Any]) -> ServiceSettings:
    """``settings`` with the connection budget applied: the pools' sizes passed to every worker
    (``$BUILDFLOW_DB_POOLS``), max instances lowered when even one connection per pool is too many,
    and what was chosen said in the plan. ``used`` are the primitives the flow uses (each database
    once), ``sinks`` what it writes to."""
    databases = {p.primitive_id(): p for p in used if isinstance(p, CloudSQLDatabase)}
    try:
        budget = connection_budget(
            [pool for database in databases.values() for pool in engine_pools(database)],
            [s for s in sinks if isinstance(s, CloudSQLTable)],
            max_instances=settings.max_instances,
            min_instances=settings.min_instances,
            workers=settings.workers,
        )
    except ConnectionBudgetError as e:
        raise GCPSettingsError(str(e)) from None
    capped = budget.max_instances < settings.max_instances
    env = {**settings.env, POOLS_ENV: json.dumps(budget.pools, sort_keys=True)} if budget.pools else settings.env
    return dataclasses.replace(
        settings,
        max_instances=budget.max_instances,
        max_instances_default=settings.max_instances_default and not capped,
        env=env,
        connection_notes=budget.notes,
    )


def deployment_of(
    flow: Any,
    primitives: Sequence[Primitive],
    *,
    existing: Sequence[Primitive] = (),
    dependency_sinks: Sequence[Primitive] = (),
    dependency_buckets: Sequence[Primitive] = (),
    dependency_queries: Sequence[Primitive] = (),
    target: str,
    name: str,
    project: str,
    region: str,
    table: Mapping[str, Any],
    flags: Mapping[str, Any],
) -> Deployment | None:
    """The flow's deployment, or None when it serves nothing (a stack of data resources only).

    ``existing`` is what the flow uses without managing it (on gcp: expected to exist), the
    ``dependency_*`` what its dependencies push to, read and write objects in, and query.
    """
    if not serves_anything(flow):
        return None
    settings = service_settings(flow, table, flags)
    return Deployment(
        target=target,
        name=name,
        project=project,
        region=region,
        settings=within_connections(settings, [*primitives, *existing], _sink_primitives(flow, dependency_sinks)),
        grants=(
            *grants(
                primitives,
                _sink_primitives(flow, dependency_sinks),
                [c.source_primitive for c in flow.consumers],
                dependency_buckets,
                existing,
                dependency_queries,
            ),
            Grant(TRACE_GRANT_ROLE),
        ),
        secrets=tuple(dict.fromkeys((*flow_secrets(primitives), *middleware_secrets(flow.services)))),
        existing=tuple(existing),
        build_service_account=named_build_account(table, project),
        iam_databases=iam_databases(primitives),
    )


def iam_databases(primitives: Sequence[Primitive]) -> tuple[CloudSQLDatabase, ...]:
    """The databases the flow logs in to with IAM whose instance the stack makes: it can turn IAM
    logins on there and make the account a user (of an instance it only uses, the owner must)."""
    made = {p.primitive_id() for p in primitives}
    return tuple(
        p for p in primitives if isinstance(p, CloudSQLDatabase) and iam_auth(p) and p.instance.primitive_id() in made
    )


def unmade_iam_users(deployment: Deployment, primitives: Sequence[Primitive]) -> list[str]:
    """What the owner of an instance the stack only uses must do before the service can log in to
    it with IAM: what the stack does for an instance it makes."""
    made = {d.primitive_id() for d in deployment.iam_databases}
    elsewhere = {
        p.primitive_id(): p
        for p in [*primitives, *deployment.existing]
        if isinstance(p, CloudSQLDatabase) and iam_auth(p) and p.primitive_id() not in made
    }
    return [
        f"the service logs in to {d.primitive_id()} as its account (enable_iam_auth), but the stack does not make "
        f"instance {d.instance.instance_name}: its owner must turn its cloudsql.iam_authentication flag on, run "
        f"`gcloud sql users create {deployment.iam_user} --instance={d.instance.instance_name} "
        f"--project={d.instance.project_id} --type=cloud_iam_service_account`, and grant that user what it uses."
        for d in elsewhere.values()
    ]
