"""What Google would refuse in a first ``apply``, asked before anything changes.

The flow's settings are checked as apply checks them (the same functions refuse the same
things); then, with the deployer's credentials, Google is asked whether the project exists,
bills, has the APIs the stack uses enabled, has organization policies that would refuse the
stack, lets the deployer do what apply does, and lets Cloud Build run as the account it is
given. The questions go out together, each with its own deadline, so the answer takes about
two round trips. Each question is one the deployer may ask with the permissions apply needs
anyway, or answers "cannot tell" when refused; an API the project has not enabled is named as
such, never taken for the answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from bfctl.providers.base import DeployRequest
from bfctl.providers.checks import Check
from bfctl.providers.gcp import docker
from bfctl.providers.gcp.cloudbuild import Remote, remote
from bfctl.providers.gcp.deploy import Deployment, apis, check_instances
from bfctl.providers.gcp.errors import GCPTargetError
from bfctl.providers.gcp.google_apis import LOGIN, Answer, CredentialsError, Endpoints, GoogleREST, SignedIn, sign_in
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
from buildflow.io.primitive import Primitive, PrimitiveValidationError

if TYPE_CHECKING:
    from bfctl.providers.gcp.provider import GCPProvider

#: Seconds each check may take (a hung API or daemon is reported, not waited for).
TIMEOUT = 10.0

#: A predefined role granting each permission apply uses, named in the fix.
ROLES = {
    "resourcemanager.projects.get": "roles/browser",
    "serviceusage.services.enable": "roles/serviceusage.serviceUsageAdmin",
    "cloudsql.instances.create": "roles/cloudsql.admin",
    "cloudsql.databases.create": "roles/cloudsql.admin",
    "cloudsql.users.create": "roles/cloudsql.admin",
    "bigquery.datasets.create": "roles/bigquery.dataEditor",
    "bigquery.tables.create": "roles/bigquery.dataEditor",
    "bigquery.datasets.setIamPolicy": "roles/bigquery.dataOwner",
    "storage.buckets.create": "roles/storage.admin",
    "storage.buckets.update": "roles/storage.admin",
    "storage.buckets.setIamPolicy": "roles/storage.admin",
    "storage.objects.create": "roles/storage.objectCreator",
    "pubsub.topics.create": "roles/pubsub.editor",
    "pubsub.subscriptions.create": "roles/pubsub.editor",
    "pubsub.topics.setIamPolicy": "roles/pubsub.admin",
    "pubsub.subscriptions.setIamPolicy": "roles/pubsub.admin",
    "run.services.create": "roles/run.admin",
    "run.services.setIamPolicy": "roles/run.admin",
    "iam.serviceAccounts.create": "roles/iam.serviceAccountAdmin",
    "iam.serviceAccounts.actAs": "roles/iam.serviceAccountUser",
    "artifactregistry.repositories.create": "roles/artifactregistry.admin",
    "artifactregistry.repositories.uploadArtifacts": "roles/artifactregistry.writer",
    "artifactregistry.repositories.setIamPolicy": "roles/artifactregistry.admin",
    "resourcemanager.projects.setIamPolicy": "roles/resourcemanager.projectIamAdmin",
    "secretmanager.secrets.create": "roles/secretmanager.admin",
    "secretmanager.versions.add": "roles/secretmanager.admin",
    "secretmanager.secrets.setIamPolicy": "roles/secretmanager.admin",
    "cloudbuild.builds.create": "roles/cloudbuild.builds.editor",
}
#: What making each primitive takes.
_MAKING: dict[type[Primitive], tuple[str, ...]] = {
    CloudSQLInstance: ("cloudsql.instances.create",),
    CloudSQLDatabase: ("cloudsql.databases.create",),
    CloudSQLUser: ("cloudsql.users.create",),
    BigQueryDataset: ("bigquery.datasets.create",),
    BigQueryTable: ("bigquery.tables.create",),
    GCSBucket: ("storage.buckets.create",),
    GCPPubSubTopic: ("pubsub.topics.create",),
    GCPPubSubSubscription: ("pubsub.subscriptions.create",),
    # its topic and subscription, the bucket's notification, and the storage agent's publisher role
    GCSFileChangeStream: (
        "pubsub.topics.create",
        "pubsub.subscriptions.create",
        "storage.buckets.update",
        "pubsub.topics.setIamPolicy",
    ),
}
#: What binding a role of the service's account on each kind of resource takes (None: the project).
_GRANTING: dict[type[Primitive] | None, str] = {
    None: "resourcemanager.projects.setIamPolicy",
    CloudSQLInstance: "resourcemanager.projects.setIamPolicy",  # a conditional project binding
    BigQueryDataset: "bigquery.datasets.setIamPolicy",
    GCSBucket: "storage.buckets.setIamPolicy",
    GCPPubSubTopic: "pubsub.topics.setIamPolicy",
    GCPPubSubSubscription: "pubsub.subscriptions.setIamPolicy",
    GCSFileChangeStream: "pubsub.subscriptions.setIamPolicy",
}
#: What a Cloud Build build run as a chosen account needs of it, and the project roles that give it.
#: What a named build account needs that the stack does not grant it (the stack grants it read on
#: its sources bucket and write on its repository; a project binding is the owner's to make).
_BUILD_NEEDS = {
    "roles/logging.logWriter": ("writes the build's logs", {"logging.admin"}),
}
#: Project roles that give a build everything it needs.
_BUILD_ALL = {"roles/cloudbuild.builds.builder", "roles/editor", "roles/owner"}
_UNIFORM, _DOMAINS = "storage.uniformBucketLevelAccess", "iam.allowedPolicyMemberDomains"


@dataclasses.dataclass(frozen=True)
class Stack:
    """What apply would do, as far as Google's answers depend on it."""

    project: str
    region: str
    primitives: tuple[Primitive, ...]
    deployment: Deployment | None
    manage_apis: bool
    #: Where Cloud Build would build, and as whom; None when apply builds nothing (``--image``, ``--no-deploy``).
    remote: Remote | None


def run(
    provider: GCPProvider,
    primitives: Sequence[Primitive],
    request: DeployRequest | None,
    endpoints: Endpoints | None = None,
) -> list[Check]:
    """Every check's outcome, in a fixed order."""
    return asyncio.run(_run(provider, primitives, request, endpoints or Endpoints.from_environment()))


async def _run(
    provider: GCPProvider, primitives: Sequence[Primitive], request: DeployRequest | None, endpoints: Endpoints
) -> list[Check]:
    stack, settings = _settings(provider, primitives, request)
    signing_in = asyncio.create_task(asyncio.wait_for(asyncio.to_thread(sign_in), TIMEOUT))
    builder = asyncio.create_task(_builder(stack)) if stack is not None and stack.remote is not None else None
    checks: list[Check] = []
    signed_in: SignedIn | None = None
    try:
        signed_in = await signing_in
        checks.append(Check("credentials", "ok", signed_in.who))
    except CredentialsError as exc:
        checks.append(Check("credentials", "fail", str(exc), f"run `{LOGIN}`, or set GOOGLE_APPLICATION_CREDENTIALS"))
    except TimeoutError:
        checks.append(Check("credentials", "unknown", f"google-auth found no credentials within {TIMEOUT:g}s"))
    checks += settings
    local_build = False
    if builder is not None:
        said, local_build = await builder
        checks.append(said)
    if stack is None or signed_in is None:
        return checks
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
        api = GoogleREST(session, signed_in, endpoints)
        project = await _bounded("project", lambda: _project(api, stack, signed_in))
        checks += project
        if any(c.failed for c in project):
            return checks  # nothing else can be asked of a project that is not there
        asked: list[tuple[str, Callable[[], Awaitable[list[Check]]]]] = [
            ("billing", lambda: _billing(api, stack)),
            ("APIs", lambda: _apis(api, stack)),
            ("org policies", lambda: _policies(api, stack, signed_in)),
            ("permissions", lambda: _permissions(api, stack, signed_in, local_build)),
        ]
        # the account the stack makes gets its grants from the stack; one the user names is checked
        named = stack.deployment.build_service_account if stack.deployment is not None else None
        email = named if stack.remote is not None and not local_build else None
        if email is not None:
            asked.append(("build identity", lambda: _build_identity(api, stack, signed_in, email)))
        for answered in await asyncio.gather(*(_bounded(name, ask) for name, ask in asked)):
            checks += answered
    return checks


async def _bounded(name: str, ask: Callable[[], Awaitable[list[Check]]]) -> list[Check]:
    """``ask``'s checks, or why there is no answer: a deadline passed, the network failed."""
    import aiohttp

    try:
        return await asyncio.wait_for(ask(), TIMEOUT)
    except TimeoutError:
        return [Check(name, "unknown", f"Google did not answer within {TIMEOUT:g}s")]
    except aiohttp.ClientError as exc:
        return [Check(name, "unknown", f"could not reach Google ({type(exc).__name__}: {exc})")]


def _settings(
    provider: GCPProvider, primitives: Sequence[Primitive], request: DeployRequest | None
) -> tuple[Stack | None, list[Check]]:
    """The stack as apply would make it, or the refusal apply would give (each names what to set)."""
    try:
        declared = [p for p, _ in provider.declared(primitives)]
        settings = provider.settings(declared)
        deployment = provider.deployment(declared)
        project, region = settings.require_location()
        builds = deployment is not None and request is not None and request.deploy and not request.image
        stack = Stack(
            project,
            region,
            tuple(declared),
            deployment,
            settings.manage_apis,
            remote(settings.table, region, project, deployment.name) if builds and deployment else None,
        )
    except (GCPTargetError, PrimitiveValidationError) as exc:
        return None, [Check("settings", "fail", str(exc))]
    if deployment is None:
        return stack, [Check("settings", "ok", f"{len(declared)} resource(s) in {project}, {region}; no service")]
    s = deployment.settings
    summary = (
        f"service {deployment.name} in {project}, {region}: {s.cpu} CPU, {s.memory}, "
        f"{s.min_instances} to {s.max_instances} instances"
    )
    return stack, [Check("settings", "ok", summary), *(Check("settings", "note", w) for w in check_instances(s))]


async def _builder(stack: Stack) -> tuple[Check, bool]:
    """Who builds the image apply deploys: Docker when its daemon answers, else Cloud Build."""
    assert stack.remote is not None
    try:
        local = await asyncio.wait_for(asyncio.to_thread(docker.daemon_answers), TIMEOUT)
    except TimeoutError:
        local = False
    if local:
        registry = f"{stack.region}-docker.pkg.dev"
        how = (
            "with Docker's credentials for it"
            if docker.has_credentials(registry)
            else "with your Google access token (Docker has no credentials for it)"
        )
        return Check("builder", "ok", f"Docker builds the image and pushes it to {registry} {how}"), True
    why = "Docker's daemon does not answer" if shutil.which("docker") else "no `docker` program is on PATH"
    return Check("builder", "note", f"{why}: Cloud Build builds the image in {stack.remote.region}"), False


def _cannot_tell(name: str, answer: Answer) -> list[Check]:
    """A refusal that says nothing about the stack: the API is not enabled, or the question not allowed."""
    api = answer.disabled_api
    if api is not None:
        where = answer.consumer or "the project"
        return [
            Check(
                name,
                "unknown",
                f"cannot tell: {api} is not enabled in {where}, which the question is counted against",
                f"gcloud services enable {api} --project {where}, so that doctor can ask",
            )
        ]
    return [Check(name, "unknown", f"cannot tell: Google answered {answer.status}: {answer.message}")]


async def _project(api: GoogleREST, stack: Stack, signed_in: SignedIn) -> list[Check]:
    answer = await api.get(f"{api.endpoints.cloudresourcemanager}v3/projects/{stack.project}")
    if answer.disabled_api:
        return _cannot_tell("project", answer)
    if answer.status == 401:
        return [Check("project", "fail", f"Google refused the credentials: {answer.message}", f"run `{LOGIN}`")]
    if answer.status in (403, 404):
        return [
            Check(
                "project",
                "fail",
                f"{stack.project} does not exist, or {signed_in.who} may not see it",
                "check --gcp-project and project in [tool.buildflow.gcp]; `gcloud projects list` shows yours",
            )
        ]
    if not answer.ok:
        return _cannot_tell("project", answer)
    state = answer.body.get("state", "ACTIVE")
    if state != "ACTIVE":
        return [Check("project", "fail", f"{stack.project} is {state}", f"gcloud projects undelete {stack.project}")]
    name = answer.body.get("displayName", stack.project)
    return [Check("project", "ok", stack.project if name == stack.project else f"{stack.project} ({name})")]


async def _billing(api: GoogleREST, stack: Stack) -> list[Check]:
    answer = await api.get(f"{api.endpoints.cloudbilling}v1/projects/{stack.project}/billingInfo")
    if not answer.ok:
        return _cannot_tell("billing", answer)
    if answer.body.get("billingEnabled"):
        return [Check("billing", "ok", f"enabled ({answer.body.get('billingAccountName', 'a billing account')})")]
    return [
        Check(
            "billing",
            "fail",
            f"billing is not enabled for {stack.project}: Google makes no paid resource in it",
            f"gcloud billing projects link {stack.project} --billing-account=ACCOUNT_ID "
            "(`gcloud billing accounts list` shows yours)",
        )
    ]


async def _apis(api: GoogleREST, stack: Stack) -> list[Check]:
    needed = apis(stack.primitives, stack.deployment)
    if not needed:
        return [Check("APIs", "ok", "the stack uses no Google API that needs enabling")]
    names = [("names", f"projects/{stack.project}/services/{name}") for name in needed]
    answer = await api.get(f"{api.endpoints.serviceusage}v1/projects/{stack.project}/services:batchGet", names)
    if not answer.ok:
        return _cannot_tell("APIs", answer)
    services = answer.body.get("services", [])
    enabled = {str(s.get("name", "")).rpartition("/")[2] for s in services if s.get("state") == "ENABLED"}
    off = [name for name in needed if name not in enabled]
    if not off:
        return [Check("APIs", "ok", f"the {len(needed)} APIs the stack uses are enabled")]
    if stack.manage_apis:
        return [Check("APIs", "note", f"the stack enables {', '.join(off)} (manage_apis; see permissions)")]
    return [
        Check(
            "APIs",
            "fail",
            f"not enabled in {stack.project}: {', '.join(off)} (manage_apis = false: the stack does not enable them)",
            f"gcloud services enable {' '.join(off)} --project {stack.project}",
        )
    ]


async def _policies(api: GoogleREST, stack: Stack, signed_in: SignedIn) -> list[Check]:
    """The organization's policies that refuse what the stack makes: only ever a note, but for
    domain-restricted sharing when the service is to be public (``allUsers``)."""
    public = stack.deployment is not None and stack.deployment.settings.public
    buckets = stack.remote is not None or any(isinstance(p, GCSBucket | GCSFileChangeStream) for p in stack.primitives)
    asked = [c for c, wanted in ((_DOMAINS, public), (_UNIFORM, buckets)) if wanted]
    url = f"{api.endpoints.orgpolicy}v2/projects/{stack.project}/policies/{{}}:getEffectivePolicy"
    answers = await asyncio.gather(*(api.get(url.format(c)) for c in asked))
    checks: list[Check] = []
    for constraint, answer in zip(asked, answers, strict=True):
        if answer.status == 403 and not answer.disabled_api:
            checks.append(
                Check(
                    "org policies",
                    "note",
                    f"{signed_in.who} may not read constraints/{constraint} (orgpolicy.policy.get; deploying does "
                    "not need it)",
                )
            )
            continue
        if not answer.ok:
            checks += _cannot_tell("org policies", answer)
            continue
        rules = (answer.body.get("spec") or {}).get("rules") or []
        if constraint == _UNIFORM:
            enforced = any(r.get("enforce") for r in rules)
            said = "enforced: bfctl's buckets use uniform access, as it requires" if enforced else "not enforced"
            checks.append(Check("org policies", "note" if enforced else "ok", f"constraints/{constraint} {said}"))
        elif rules and not any(r.get("allowAll") for r in rules):
            checks.append(
                Check(
                    "org policies",
                    "fail",
                    f"constraints/{constraint} keeps IAM members to the organization's domains, so the public "
                    "service's allUsers invoker would be refused",
                    "apply without --public (public = false) and grant roles/run.invoker to a group of your domain, "
                    "or put Identity-Aware Proxy or a load balancer in front; `gcloud run services update SERVICE "
                    "--no-invoker-iam-check` leaves it open within the policy",
                )
            )
        else:
            checks.append(Check("org policies", "ok", f"constraints/{constraint} lets the service be public"))
    return list(dict.fromkeys(checks))  # one line for both when their API refused both


def permissions_needed(stack: Stack, local_build: bool) -> list[str]:
    """The permissions on the project that apply uses to make ``stack`` (images built by Docker
    when ``local_build``), sorted. Resources in other projects are not counted."""
    needed = {"resourcemanager.projects.get"}
    if stack.manage_apis and apis(stack.primitives, stack.deployment):
        needed.add("serviceusage.services.enable")
    for primitive in stack.primitives:
        needed.update(_MAKING.get(type(primitive), ()))
    deployment = stack.deployment
    if deployment is not None:
        needed |= {
            "run.services.create",
            "iam.serviceAccounts.create",
            "iam.serviceAccounts.actAs",
            "artifactregistry.repositories.create",
            # Cloud Build's identity: its sources bucket, its read there and its push to the repository
            "storage.buckets.create",
            "storage.buckets.setIamPolicy",
            "artifactregistry.repositories.setIamPolicy",
        }
        if deployment.build_service_account is None:  # the account the stack makes writes logs
            needed.add("resourcemanager.projects.setIamPolicy")
        needed |= {_GRANTING[type(g.primitive) if g.primitive is not None else None] for g in deployment.grants}
        if deployment.settings.public:
            needed.add("run.services.setIamPolicy")
        if deployment.secrets:
            needed |= {f"secretmanager.{p}" for p in ("secrets.create", "versions.add", "secrets.setIamPolicy")}
    if stack.remote is not None:
        if local_build:
            needed.add("artifactregistry.repositories.uploadArtifacts")
        else:
            needed |= {"cloudbuild.builds.create", "storage.objects.create"}
    return sorted(needed)


async def _permissions(api: GoogleREST, stack: Stack, signed_in: SignedIn, local_build: bool) -> list[Check]:
    needed = permissions_needed(stack, local_build)
    url = f"{api.endpoints.cloudresourcemanager}v1/projects/{stack.project}:testIamPermissions"
    answer = await api.post(url, {"permissions": needed})
    if not answer.ok:
        return _cannot_tell("permissions", answer)
    held = set(answer.body.get("permissions", []))
    missing = [p for p in needed if p not in held]
    if not missing:
        return [Check("permissions", "ok", f"{signed_in.who} may do the {len(needed)} things apply does")]
    roles = sorted({ROLES[p] for p in missing})
    member = signed_in.member or "user:YOUR_EMAIL"
    return [
        Check(
            "permissions",
            "fail",
            f"{signed_in.who} lacks {', '.join(missing)} in {stack.project}",
            f"a project owner grants {', '.join(roles)}: gcloud projects add-iam-policy-binding {stack.project} "
            f"--member={member} --role=ROLE (once per role)",
        )
    ]


async def _build_identity(api: GoogleREST, stack: Stack, signed_in: SignedIn, email: str) -> list[Check]:
    """The account the user named for Cloud Build: it exists, the deployer may run builds as it,
    and it may write the build's logs, as far as the project's policy says (the stack grants it
    the rest: read on its sources bucket, push to its repository)."""
    tested, policy = await asyncio.gather(
        api.post(
            f"{api.endpoints.iam}v1/projects/-/serviceAccounts/{email}:testIamPermissions",
            {"permissions": ["iam.serviceAccounts.actAs"]},
        ),
        api.post(
            f"{api.endpoints.cloudresourcemanager}v1/projects/{stack.project}:getIamPolicy",
            {"options": {"requestedPolicyVersion": 3}},
        ),
    )
    if tested.status == 404:
        return [
            Check(
                "build identity",
                "fail",
                f"build_service_account {email} does not exist",
                f"gcloud iam service-accounts create {email.partition('@')[0]} --project {stack.project}, or set "
                "build_service_account in [tool.buildflow.gcp] to one that exists",
            )
        ]
    if not tested.ok:
        return _cannot_tell("build identity", tested)
    if "iam.serviceAccounts.actAs" not in tested.body.get("permissions", []):
        member = signed_in.member or "user:YOUR_EMAIL"
        return [
            Check(
                "build identity",
                "fail",
                f"{signed_in.who} may not run builds as {email} (iam.serviceAccounts.actAs)",
                f"gcloud iam service-accounts add-iam-policy-binding {email} --member={member} "
                "--role=roles/iam.serviceAccountUser",
            )
        ]
    if not policy.ok:
        need = ", ".join(_BUILD_NEEDS)
        return [Check("build identity", "note", f"cannot read the project's IAM policy: make sure {email} has {need}")]
    held = {
        b.get("role")
        for b in policy.body.get("bindings", [])
        if f"serviceAccount:{email}" in b.get("members", []) and not b.get("condition")
    }
    missing = [
        f"{role} ({what})"
        for role, (what, also) in _BUILD_NEEDS.items()
        if not held & (_BUILD_ALL | {role} | {f"roles/{r}" for r in also})
    ]
    if not missing:
        return [Check("build identity", "ok", f"Cloud Build runs as {email}, which has what a build needs")]
    roles = " ".join(r.partition(" ")[0] for r in missing)
    return [
        Check(
            "build identity",
            "warn",
            f"{email} has no project role that {'; '.join(missing)} (unless granted on the bucket or repository)",
            f"for ROLE in {roles}: gcloud projects add-iam-policy-binding {stack.project} "
            f"--member=serviceAccount:{email} --role=$ROLE",
        )
    ]
