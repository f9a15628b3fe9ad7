"""The ``gcp`` target: the flow's primitives as Google Cloud resources, made by Pulumi.

``plan`` runs ``pulumi preview`` and maps its steps to the shared plan model; ``apply`` runs
``pulumi up`` and ``destroy`` runs ``pulumi destroy``, both reporting each resource's progress
as the engine's events arrive. Pulumi's state is the truth about the cloud; bfctl's own state
file for the stack records what the last apply declared and the outputs ``serve`` hands to
dependencies (never a secret), so serving needs neither Pulumi nor the network.

Nothing here imports pulumi at module level: the CLI, the local target and ``serve`` stay
free of it, and a missing extra is reported with the command that installs it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bfctl.providers import migrations
from bfctl.providers.base import DeployRequest, Outputs, Progress, Provider, no_progress
from bfctl.providers.checks import Check
from bfctl.providers.errors import ProviderError, UnsupportedPrimitiveError
from bfctl.providers.gcp.deploy import (
    SECRETS_OUTPUT,
    Deployment,
    apis,
    check_instances,
    deployment_of,
    serves_anything,
    service_name,
    stack_secrets,
    unmade_iam_users,
)
from bfctl.providers.gcp.deployed import DeployedRecord, ready_to_push
from bfctl.providers.gcp.errors import (
    GCPExtraMissingError,
    GCPTargetError,
    PulumiNotInstalledError,
    PulumiOperationError,
    policy_refusals,
)
from bfctl.providers.gcp.events import ProgressRelay, StepCollector, resource_name, resource_type_name
from bfctl.providers.gcp.existing import existing_outputs
from bfctl.providers.gcp.settings import GCPSettings, passphrase_env, resolve
from bfctl.providers.migrations import MIGRATIONS
from bfctl.providers.plan import GUARDS, Guard, Plan, ResourceChange
from bfctl.providers.portables import to_gcp
from bfctl.providers.secrets import scram_verifier
from bfctl.providers.state import State, outputs_of, record
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
from buildflow.io.local import File, LocalFileChangeStream
from buildflow.io.primitive import Primitive
from buildflow.secrets import Password, Secret

if TYPE_CHECKING:
    from pulumi import automation as auto

#: What the gcp target makes; ``bfctl.providers.gcp.program`` has one builder for each.
SUPPORTED: tuple[type[Primitive], ...] = (
    CloudSQLInstance,
    CloudSQLDatabase,
    CloudSQLUser,
    BigQueryDataset,
    BigQueryTable,
    GCSBucket,
    GCPPubSubTopic,
    GCPPubSubSubscription,
    GCSFileChangeStream,
)
#: Why a primitive the gcp target cannot make is refused, when there is more to say.
_WHY_NOT: dict[type[Primitive], str] = {
    CloudSQLTable: "pulumi-gcp has no resource for a table inside a Cloud SQL database",
}
#: Primitives of the machine bfctl runs on, which the gcp target will never make: a Cloud Run
#: instance's disk is memory, lost when the instance scales in, and no two instances share it.
_LOCAL_ONLY: dict[type[Primitive], str] = {
    File: "sink to a GCSBucket instead, or to a portable Bucket, which is a GCSBucket on gcp and a folder locally",
    LocalFileChangeStream: "read a GCSFileChangeStream (a bucket's object notifications) instead",
}
_EXTRA_MODULES = ("pulumi", "pulumi_gcp", "google.cloud.sql.connector")
T = TypeVar("T")


def check_extra() -> None:
    """Raise ``GCPExtraMissingError`` unless the ``bfctl[gcp]`` libraries are installed (imports none)."""
    missing = []
    for module in _EXTRA_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            missing.append(module)
    if missing:
        raise GCPExtraMissingError(missing)


def _stderr_tail(exc: BaseException, lines: int = 8) -> str:
    """The last lines Pulumi wrote to stderr (the Automation API keeps them in the message)."""
    text = str(exc).split("\n stderr: ", 1)[-1]
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(f"  {line}" for line in kept[-lines:])


class GCPProvider(Provider):
    target = "gcp"
    deploys = True

    def __init__(
        self,
        project_dir: str | os.PathLike[str],
        stack: str = "dev",
        *,
        project: str | None = None,
        region: str | None = None,
        ask_passphrase: Callable[[], str] | None = None,
        deploy: DeployRequest | None = None,
    ) -> None:
        """``project``/``region`` come from flags; ``ask_passphrase`` is called (once) when the
        environment has no Pulumi passphrase, or is None where nobody can answer (CI);
        ``deploy`` is the flow to run on Cloud Run (None: the data resources only)."""
        check_extra()
        super().__init__(project_dir, stack)
        self._project, self._region = project, region
        self._ask_passphrase = ask_passphrase
        self._secrets_env: dict[str, str] | None = None
        self._secret_values: dict[str, str] | None = None  # the stack's Secret values, never written anywhere
        self._request = deploy
        self.deployed = DeployedRecord(self.store.path.with_name(f"{self.store.path.stem}.deployed.json"))
        self._deployed_read = False  # whether ``deployed`` was taken from the stack by this command

    @classmethod
    def for_command(
        cls,
        project_dir: str | os.PathLike[str],
        stack: str,
        options: Mapping[str, str | None],
        ask_passphrase: Callable[[], str] | None,
        deploy: DeployRequest | None,
    ) -> GCPProvider:
        """The flags' project and region, the terminal for a missing Pulumi passphrase, the flow's service."""
        given = {name: value for name, value in options.items() if value}
        return cls(project_dir, stack, **given, ask_passphrase=ask_passphrase, deploy=deploy)

    # -- what the target can make --------------------------------------------------------------
    def check_supported(self, primitive: Primitive) -> None:
        instead = _LOCAL_ONLY.get(type(primitive))
        if instead is not None:
            raise UnsupportedPrimitiveError(
                f"the gcp target will never make {type(primitive).__name__} {primitive.primitive_id()}: the flow "
                "runs on Cloud Run, whose instances keep files in memory, gone when an instance scales in and "
                f"never shared between instances; {instead}"
            )
        if not isinstance(primitive, SUPPORTED):
            names = ", ".join(t.__name__ for t in SUPPORTED)
            why = _WHY_NOT.get(type(primitive))
            raise UnsupportedPrimitiveError(
                f"the gcp target cannot make {type(primitive).__name__} yet{f' ({why})' if why else ''}; "
                f"it makes {names}"
            )

    def portables(self, primitives: Sequence[Primitive]) -> Callable[[Primitive], list[Primitive]]:
        """Google's resources in the stack's project and region (``to_gcp``)."""
        project, region = self.settings(primitives).require_location()
        return lambda primitive: to_gcp(primitive, project, region)

    def settings(self, primitives: Sequence[Primitive] = ()) -> GCPSettings:
        return resolve(self.project_dir, self.stack, primitives, project=self._project, region=self._region)

    # -- the interface -------------------------------------------------------------------------
    def refresh(self) -> State:
        """What the last apply recorded (Pulumi refreshes against the cloud during plan and apply)."""
        return self.store.load()

    def recorded_plan(self, primitives: Sequence[Primitive]) -> Plan:
        """The plan against what the last apply recorded, without Pulumi or the network (for ``serve``)."""
        return super().plan(primitives)

    def plan(self, primitives: Sequence[Primitive]) -> Plan:
        declared = [p for p, _ in self.declared(primitives)]
        deployment = self.deployment(declared)
        self._read_deployed(declared, deployment)
        stack = self._stack(declared, deployment, *self._planned_image(deployment))
        steps, diagnostics = StepCollector(), ProgressRelay(no_progress)
        self._run("preview", diagnostics, lambda: stack.preview(on_event=_both(steps, diagnostics), refresh=True))
        state = self.store.load()
        changes = steps.changes(declared, then=self._migration_changes(state, declared))
        return Plan(self.target, self.stack, changes, state.serial)

    def apply(self, plan: Plan, progress: Progress = no_progress) -> Outputs:
        """Data resources first, then migrations, then the image, then the service that runs it.

        While the data resources change and the databases migrate, the service keeps running the
        code it ran; a first deploy makes everything but the service (the image repository
        included), pushes the image, then adds the service. So an apply runs ``pulumi up`` once,
        or twice when a first deploy or a migration comes before the new code.
        """
        with self.locked("apply"):
            self.check_plan(plan)
            databases = [
                c.primitive
                for c in plan.changes
                if c.resource_type == MIGRATIONS and isinstance(c.primitive, CloudSQLDatabase)
            ]
            declared = [c.primitive for c in plan.changes if c.primitive is not None and c.resource_type != MIGRATIONS]
            deployment = self.deployment(declared)
            self._read_deployed(declared, deployment)
            relay = ProgressRelay(progress)
            request = self._request
            deploying = deployment is not None and request is not None and request.deploy
            first_push = deploying and request is not None and not request.image and not self.deployed.has_repository
            running = self.deployed.image, self.deployed.tag
            outputs: dict[str, dict[str, Any]] | None = None
            if databases or first_push:
                outputs = self._up(declared, deployment, *running, relay)
                relay.finish()
                self._migrate(databases, outputs, progress)
            image, tag = running
            if deploying and request is not None and deployment is not None:
                image, tag = (request.image, None) if request.image else self._publish(declared, deployment)
            if outputs is None or (image, tag) != running:
                outputs = self._up(declared, deployment, image, tag, relay)
            relay.finish()
            shown = {p.primitive_id(): outputs.get(p.primitive_id(), {}) for p in declared}
            if "service" in outputs:
                shown["service"] = outputs["service"]
            return shown

    def preflight(self, primitives: Sequence[Primitive]) -> list[Check]:
        """The flow's settings, then what Google would refuse: asked of Google with the deployer's credentials."""
        from bfctl.providers.gcp.preflight import run

        return run(self, primitives, self._request)

    def existing_outputs(self, primitives: Sequence[Primitive]) -> Outputs:
        """What the runtime needs of resources the flow uses as they exist, from their names."""
        return existing_outputs(self.on_target(primitives))

    def password_of(self, password: Password) -> str:
        """A Secret's value from its variable, else the stack's (given or generated at apply)."""
        if not isinstance(password, Secret):
            return password
        value = password.read() or self._stack_secrets().get(password.name)
        if not value:
            raise GCPTargetError(
                f"secret {password.name!r} has no value on this machine: set {password.env_var}, "
                "or run `bfctl apply --target gcp` first (the stack keeps the value it generates)"
            )
        return value

    def outputs(self) -> Outputs:
        """The primitives' recorded outputs, and the service's (its URL) once deployed."""
        recorded = super().outputs()
        if self.deployed.service:
            recorded["service"] = dict(self.deployed.service)
        return recorded

    def apply_warnings(self, primitives: Sequence[Primitive]) -> list[str]:
        """Passwords written in the code (they ship inside the image), and what the Cloud Run
        service's settings cost or cannot do."""
        warnings = [
            f"the password of {user.primitive_id()} is a string literal in the code, so it ships inside the image; "
            "use buildflow.secrets.Secret(...) instead."
            for user in primitives
            if isinstance(user, CloudSQLUser) and not isinstance(user.password, Secret)
        ]
        deployment = self.deployment(primitives)
        if deployment is not None:
            warnings += check_instances(deployment.settings) + unmade_iam_users(deployment, primitives)
        return warnings

    def destroy_warnings(self, plan: Plan) -> list[str]:
        if any(c.resource_type == "gcp.artifactregistry.Repository" for c in plan.changes):
            return ["the image repository goes with the stack: every image of the flow in it is deleted."]
        return []

    def guarded(self, plan: Plan) -> list[Guard]:
        """Deletion protection on, or a bucket that must be empty (``GUARDS``)."""
        return plan.guarded()

    def lift_guards(self, resource_ids: Sequence[str]) -> None:
        """Turn off, in the stack's state, what would stop ``destroy`` at these resources (the
        ``GUARDS`` of ``bfctl.providers.plan``): deletion protection off, force_destroy on.

        Those guards are Pulumi's, never sent to Google: the provider reads them from the state
        when it deletes. Destroy runs without the flow, so the state is where to change them,
        exported and imported again with its secrets still encrypted.
        """
        from pulumi import automation as auto

        with self.locked("destroy"):
            workspace = self._stack([], None, None).workspace
            command = auto.PulumiCommand()  # found by _stack already

            def cli(*args: str) -> str:
                return command.run([*args, "--stack", self.stack], workspace.work_dir, workspace.env_vars).stdout

            exported = json.loads(self._run("stack export", None, lambda: cli("stack", "export")))
            lifted = _lifted(exported, set(resource_ids))
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder, "state.json")
                path.write_text(json.dumps(lifted))
                self._run("stack import", None, lambda: cli("stack", "import", "--file", str(path)))

    def destroy(self, progress: Progress = no_progress) -> Plan:
        with self.locked("destroy"):
            stack = self._stack([], None, None)
            steps, relay = StepCollector(), ProgressRelay(progress)
            self._run("destroy", relay, lambda: stack.destroy(on_event=_both(steps, relay)))
            relay.finish()
            state = self.store.load()
            state.resources.clear()
            self.store.save(state)
            self.deployed.forget()
            return Plan(self.target, self.stack, steps.changes([]), state.serial)

    # -- migrations ------------------------------------------------------------------------------
    def _migration_changes(self, state: State, declared: Sequence[Primitive]) -> list[ResourceChange]:
        """The migrated databases' pending revisions, read through the Cloud SQL connector from
        this machine; a database it cannot reach now is checked again at apply."""
        outputs = outputs_of(state)

        def revisions_of(database: CloudSQLDatabase) -> migrations.Revisions:
            if not migrations.applied_before(state, database):
                return (), ""
            try:
                return migrations.read_current(outputs, self.target, database, self.password_of), ""
            except Exception as exc:  # unreachable before apply: said in the plan, not fatal
                return None, _first_line(exc)

        return migrations.plan_changes(self.project_dir, declared, revisions_of)

    def _migrate(
        self, databases: Sequence[CloudSQLDatabase], outputs: dict[str, dict[str, Any]], progress: Progress
    ) -> None:
        """Run each database's pending revisions through the Cloud SQL connector, before new code serves."""
        for database in databases:
            rid = migrations.resource_id(database)
            progress(rid, "update", "started")
            try:
                folder = migrations.folder_of(self.project_dir, database)
                message = migrations.migrate(outputs, self.target, database, folder, self.password_of)
            except Exception as exc:
                progress(rid, "update", "failed", _first_line(exc))
                cause = (
                    str(exc)
                    if isinstance(exc, ProviderError)
                    else f"could not reach {database.primitive_id()} to run its migrations: {_first_line(exc)}"
                )
                raise GCPTargetError(
                    f"{cause}\nThe data resources are applied; the service was not updated: it runs the code it ran."
                ) from None
            progress(rid, "update", "done", message)

    def _stack_secrets(self) -> dict[str, str]:
        """The flow's Secret values the stack keeps (read once, kept in memory only)."""
        if self._secret_values is None:
            self._read_stack([])
        return self._secret_values or {}

    def _read_deployed(self, primitives: Sequence[Primitive], deployment: Deployment | None) -> None:
        """Take what the stack has deployed from its outputs, once per command, before declaring it.

        The checkout's record may be missing (a fresh clone, CI sharing the Pulumi backend) or
        older than another machine's apply: declaring from it would make Pulumi delete the live
        service, or roll it back to an older image."""
        if deployment is not None and not self._deployed_read:
            self._read_stack(primitives)

    def _read_stack(self, primitives: Sequence[Primitive]) -> None:
        """The stack's outputs: its secrets kept in memory, what it deployed taken as the truth."""
        outputs = self._run("stack output", None, self._stack(primitives, None, None).outputs)
        self._secret_values = _secrets_in(outputs)
        self.deployed.take({key: out.value for key, out in outputs.items() if not out.secret})
        self._deployed_read = True

    # -- the Cloud Run deployment --------------------------------------------------------------
    def deployment(self, primitives: Sequence[Primitive]) -> Deployment | None:
        """The flow's service, account, grants and secrets; None for a flow that serves nothing."""
        request = self._request
        if request is None:
            return None
        settings = self.settings(primitives)
        if not serves_anything(request.flow):
            return None
        project, region = settings.require_location()
        return deployment_of(
            request.flow,
            primitives,
            existing=self.on_target(self.expected_to_exist(request.unmanaged)),
            dependency_sinks=request.dependency_sinks,
            dependency_buckets=request.dependency_buckets,
            dependency_queries=request.dependency_queries,
            target=request.target,
            name=service_name(settings.pulumi_project, self.stack, settings.table),
            project=project,
            region=region,
            table=settings.table,
            flags=request.flags,
        )

    def _planned_image(self, deployment: Deployment | None) -> tuple[str | None, str | None]:
        """The image a plan shows and its tag: the one the service runs when the code is unchanged
        (or not deployed now), else the new code's reference by tag (its digest is known once pushed)."""
        request = self._request
        running = self.deployed.image, self.deployed.tag
        if deployment is None or request is None or not request.deploy:
            return running
        if request.image:
            return request.image, None
        from bfctl.providers.gcp.image import build_context, image_name, image_reference

        tag = build_context(self.project_dir, request.target, progress=request.say).tag
        if tag == self.deployed.tag and self.deployed.image:
            return running
        name = image_name(self.settings().pulumi_project)
        return image_reference(name, tag, deployment.project, deployment.region, deployment.repository_id), tag

    def _publish(self, primitives: Sequence[Primitive], deployment: Deployment) -> tuple[str, str]:
        """Push the image of the current code unless the registry has it; its pinned reference and tag."""
        from bfctl.providers.gcp.build import publish_image

        assert self._request is not None
        say = self._request.say
        published = publish_image(
            self.project_dir,
            self._request.target,
            primitives,
            project=deployment.project,
            region=deployment.region,
            say=say,
            output=say,
            stack=self.stack,
        )
        return published.pinned, published.reference.rpartition(":")[2]

    # -- Pulumi ---------------------------------------------------------------------------------
    def _up(
        self,
        primitives: Sequence[Primitive],
        deployment: Deployment | None,
        image: str | None,
        tag: str | None,
        relay: ProgressRelay,
    ) -> dict[str, dict[str, Any]]:
        """One ``pulumi up``; records what it made and returns the stack's (non-secret) outputs."""
        try:
            result = self._up_until_revision_reads_secrets(primitives, deployment, image, tag, relay)
        except PulumiOperationError as exc:
            if not _api_trouble(relay):
                raise
            needed = " ".join(apis(primitives, deployment))
            settings = self.settings(primitives)
            project = f" --project {settings.project}" if settings.project else ""
            then = (
                "then set manage_apis = false under [tool.buildflow.gcp] so the stack only uses them, and apply again"
                if settings.manage_apis
                else "then apply again"
            )
            raise PulumiOperationError(
                f"{exc}\nThe stack could not enable or use the Google APIs it needs (enabling them takes the "
                "Service Usage Admin role, roles/serviceusage.serviceUsageAdmin). Ask a project owner to run "
                f"`gcloud services enable {needed}{project}`, {then}."
            ) from None
        outputs = {
            key: dict(out.value)
            for key, out in result.outputs.items()
            if not out.secret and isinstance(out.value, dict)
        }
        self._secret_values = _secrets_in(result.outputs)
        self._record(primitives, outputs)
        service = outputs.get("service")
        self.deployed.save(
            has_repository=ready_to_push(outputs),
            image=image if service else None,
            tag=tag if service else None,
            service=service,
        )
        return outputs

    def _up_until_revision_reads_secrets(
        self,
        primitives: Sequence[Primitive],
        deployment: Deployment | None,
        image: str | None,
        tag: str | None,
        relay: ProgressRelay,
    ) -> auto.UpResult:
        """``pulumi up``, and again with a new revision while Cloud Run refuses one for its secrets.

        The service is made after its account's secret-accessor bindings, but IAM applies a new
        binding everywhere only after typically 2 minutes, sometimes 7 or more: until then Cloud
        Run refuses the revision ("Permission denied on secret") and the service goes on serving
        its last ready one. Applying the same template again would change nothing, so each retry
        asks for a new revision (``redeploy``)."""
        waits = iter(SECRET_ACCESS_WAITS)
        redeploy: str | None = None
        while True:
            stack = self._stack(primitives, deployment, image, tag, redeploy)
            try:
                return self._run("up", relay, functools.partial(stack.up, on_event=relay, refresh=True))
            except PulumiOperationError as exc:
                if not _secrets_refused(relay):
                    raise
                wait = next(waits, None)
                if wait is None:
                    raise PulumiOperationError(
                        f"{exc}\nCloud Run refused the service's new revision: its service account could not read "
                        "the flow's secrets yet. The stack granted it roles/secretmanager.secretAccessor on each, "
                        "and IAM applies a new grant within about 2 minutes, sometimes 7 or more; bfctl waited "
                        f"{sum(SECRET_ACCESS_WAITS) / 60:.0f} minutes. Apply again in a few minutes; the service "
                        "serves its last ready revision meanwhile."
                    ) from None
            self._say(
                "Cloud Run refused the new revision: the service account cannot read its secrets yet (IAM takes "
                f"minutes to apply a new grant); trying a new revision in {wait:.0f}s."
            )
            time.sleep(wait)
            _report_again(relay)
            redeploy = str(time.time_ns())

    def _say(self, line: str) -> None:
        if self._request is not None:
            self._request.say(line)

    def _stack(
        self,
        primitives: Sequence[Primitive],
        deployment: Deployment | None,
        image: str | None,
        tag: str | None = None,
        redeploy: str | None = None,
    ) -> auto.Stack:
        """The Pulumi stack with the program of ``primitives`` (and ``deployment`` running
        ``image``, built as ``tag``, as a new revision when given ``redeploy``) and the
        project/region config."""
        try:
            from pulumi import automation as auto

            from bfctl.providers.gcp.program import program
        except ImportError as exc:
            raise GCPExtraMissingError([exc.name or str(exc)]) from None
        settings = self.settings(primitives)
        if primitives:
            settings.require_location()
        try:  # before the passphrase is asked for: without the program it would be asked in vain
            command = auto.PulumiCommand()
        except FileNotFoundError:
            raise PulumiNotInstalledError from None
        except auto.InvalidVersionError as exc:
            raise GCPTargetError(f"the installed Pulumi CLI cannot be used: {exc}") from None
        env = {"PULUMI_BACKEND_URL": settings.backend_url, "PULUMI_SKIP_UPDATE_CHECK": "true"}
        env.update(self._passphrase(settings))
        if settings.backend_url.startswith("file://"):
            Path(settings.backend_url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        options = auto.LocalWorkspaceOptions(
            work_dir=str(settings.work_dir),
            env_vars=env,
            secrets_provider=None if settings.uses_pulumi_cloud else "passphrase",
            project_settings=auto.ProjectSettings(name=settings.pulumi_project, runtime="python"),
            pulumi_command=command,
        )
        stack = self._run(
            "stack select/init",
            None,
            lambda: auto.create_or_select_stack(
                self.stack,
                project_name=settings.pulumi_project,
                program=program(
                    primitives,
                    project=settings.project,
                    deployment=deployment,
                    image=image,
                    tag=tag,
                    redeploy=redeploy,
                    given_secrets={s.name: v for s in stack_secrets(primitives, deployment) if (v := s.read())},
                    manage_apis=settings.manage_apis,
                ),
                opts=options,
            ),
        )
        config = {
            key: auto.ConfigValue(value)
            for key, value in (("gcp:project", settings.project), ("gcp:region", settings.region))
            if value
        }
        if config:
            self._run("config set-all", None, lambda: stack.set_all_config(config))
        return stack

    def _passphrase(self, settings: GCPSettings) -> dict[str, str]:
        if self._secrets_env is None:
            self._secrets_env = passphrase_env(settings, self._ask_passphrase)
        return self._secrets_env

    def _run(self, command: str, relay: ProgressRelay | None, call: Callable[[], T]) -> T:
        """Run one Automation API call; Pulumi's failures become messages a user can act on."""
        from pulumi import automation as auto

        try:
            return call()
        except auto.ConcurrentUpdateError:
            raise PulumiOperationError(
                f"another Pulumi update of stack `{self.stack}` is running; wait for it to finish and try again"
            ) from None
        except auto.CommandError as exc:
            details = (relay.error_summary() if relay else "") or _stderr_tail(exc)
            after = (
                "\nWhat Pulumi finished before the failure is recorded in its state: run `bfctl plan --target gcp` "
                "to see what is left, then apply again."
                if command in ("up", "destroy")
                else ""
            )
            raise PulumiOperationError(
                f"`pulumi {command}` failed for stack `{self.stack}`:\n{details}{policy_refusals(details)}{after}"
            ) from None

    # -- bfctl's record of the stack -----------------------------------------------------------
    def _record(self, primitives: Sequence[Primitive], outputs: dict[str, dict[str, Any]]) -> None:
        """Record what was applied (secrets as verifiers only) and the outputs ``serve`` reads."""
        state = self.store.load()
        state.resources = {}
        for p in primitives:
            secret = p.secret_properties
            properties = {  # a Secret's value may be the stack's, generated at the first apply
                k: scram_verifier(self.password_of(v)) if k in secret and isinstance(v, str | Secret) else v
                for k, v in p.desired_properties().items()
            }
            record(state, p, properties, outputs.get(p.primitive_id(), {}))
        self.store.save(state)


#: How long to wait before each new revision while Cloud Run refuses one for its secrets: 6.75
#: minutes in all, about the 7 Google gives as a new IAM grant's longer propagation time.
SECRET_ACCESS_WAITS: tuple[float, ...] = (15.0, 30.0, 60.0, 120.0, 180.0)
#: What Cloud Run says of a revision whose service account cannot read a secret it references.
_REFUSED_REVISION = "Permission denied on secret"


def _secrets_refused(relay: ProgressRelay) -> bool:
    return any(_REFUSED_REVISION in message for messages in relay.errors.values() for message in messages)


def _report_again(relay: ProgressRelay) -> None:
    """Let ``relay`` report the resources that failed once more (the next ``up`` retries them)."""
    for name in relay.errors:
        relay.started.pop(name, None)
        relay.finished.discard(name)
    relay.errors.clear()


#: What Google says when an API the project has not enabled is called.
_API_DISABLED = ("SERVICE_DISABLED", "has not been used in project", "it is disabled")


def _api_trouble(relay: ProgressRelay) -> bool:
    """Whether the failure was an API enablement, or a call to an API not enabled."""
    return any(
        name.startswith("api-") or any(marker in message for marker in _API_DISABLED for message in messages)
        for name, messages in relay.errors.items()
    )


def _lifted(exported: dict[str, Any], resource_ids: set[str]) -> dict[str, Any]:
    """The exported stack state with the guards of ``resource_ids`` turned off (inputs and outputs)."""
    for resource in exported.get("deployment", {}).get("resources", []):
        guard = GUARDS.get(resource_type_name(resource.get("type", "")))
        if guard is None or resource_name(resource.get("urn", "")) not in resource_ids:
            continue
        name, stops, _ = guard
        key = "".join(part.capitalize() if i else part for i, part in enumerate(name.split("_")))
        for side in ("inputs", "outputs"):
            if isinstance(resource.get(side), dict):
                resource[side][key] = not stops
    return exported


def _secrets_in(outputs: Mapping[str, Any]) -> dict[str, str]:
    """The flow's Secret values among a stack's outputs (``OutputValue``s), by name."""
    found = outputs.get(SECRETS_OUTPUT)
    return dict(found.value) if found is not None and isinstance(found.value, dict) else {}


def _first_line(exc: BaseException) -> str:
    """An error's first line (drivers add pages of context after it)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _both(*callbacks: Callable[[Any], None]) -> Callable[[Any], None]:
    def each(event: Any) -> None:
        for callback in callbacks:
            callback(event)

    return each
