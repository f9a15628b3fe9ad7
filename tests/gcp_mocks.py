"""Pulumi's unit-test mocks, answering like GCP would, and a monitor that records what a
program registers (shared by the gcp program's tests; imports pulumi).

The mocks run with ``preview=False``: in preview mode an output the mock does not return is
unknown, and an ``apply`` on it never runs, so an assertion inside it would check nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from bfctl.providers.gcp import program as gcp_program

INSTANCE_T = "gcp:sql/databaseInstance:DatabaseInstance"
#: The project number Google's data sources answer with.
PROJECT_NUMBER = "123456789012"
#: What the mocked RandomPassword generates.
GENERATED_PASSWORD = "generated-by-the-stack-0123456789"


class CloudMocks(pulumi.runtime.Mocks):
    """Answers like GCP would: the inputs back, plus the outputs the cloud computes."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == INSTANCE_T:
            state["connectionName"] = f"{state['project']}:{state['region']}:{state['name']}"
            state["publicIpAddress"] = "203.0.113.7"
            state["privateIpAddress"] = "10.0.0.7"
        elif args.typ == "gcp:bigquery/dataset:Dataset":
            state["location"] = "US"
        elif args.typ == "gcp:storage/bucket:Bucket":
            state["url"] = f"gs://{state['name']}"
        elif args.typ == "gcp:serviceaccount/account:Account":
            state["email"] = f"{state['accountId']}@{state['project']}.iam.gserviceaccount.com"
            state["member"] = f"serviceAccount:{state['email']}"
        elif args.typ == "gcp:artifactregistry/repository:Repository":
            state["name"] = state["repositoryId"]
        elif args.typ == "gcp:secretmanager/secretVersion:SecretVersion":
            state["version"] = "1"
        elif args.typ == "gcp:cloudrunv2/service:Service":
            state["uri"] = f"https://{state['name']}-abc123-uc.a.run.app"
        elif args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = GENERATED_PASSWORD
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token == "gcp:organizations/getProject:getProject":
            return {"number": PROJECT_NUMBER, "projectId": args.args.get("projectId")}
        if args.token == "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":
            return {"emailAddress": f"service-{PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com"}
        return {}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Keeps every registration as the engine would receive it, with its dependencies."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registered: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registered[request.name] = {
                "type": request.type,
                "urn": response.urn,
                "inputs": rpc.deserialize_properties(request.object),
                "dependencies": list(request.dependencies),
                "delete_before_replace": request.deleteBeforeReplace,
                "ignore_changes": list(request.ignoreChanges),
            }
        return response


@contextlib.contextmanager
def mocked() -> Iterator[RecordingMonitor]:
    """Pulumi's runtime on the mocks for the block (the ``monitor`` fixture of conftest)."""
    loop = asyncio.new_event_loop()  # Pulumi's runtime uses the current loop; another test's asyncio.run cleared it
    asyncio.set_event_loop(loop)
    mon = RecordingMonitor(CloudMocks())
    pulumi.runtime.set_mocks(CloudMocks(), project="bfctl-test", stack="dev", preview=False, monitor=mon)
    root = pulumi.runtime.get_root_resource()
    root.outputs.clear()  # the root stack outlives one test
    try:
        yield mon
    finally:
        root.outputs.clear()
        asyncio.set_event_loop(None)
        loop.close()


def run_program(primitives: list[Any], secret: set[str] | None = None, **options: Any) -> dict[str, Any]:
    """Run the real program (``options`` as ``program`` takes them) under the mocks; returns the
    stack's exports, resolved, and adds the names of those that are Pulumi secrets to ``secret``."""
    return run_inline(gcp_program.program(primitives, **options), secret)


def run_inline(program: Callable[[], None], secret: set[str] | None = None) -> dict[str, Any]:
    """Run an inline program (one the Automation API was given) under the mocks, as ``run_program``."""
    exports: dict[str, Any] = {}

    async def secrets_of(outputs: dict[str, Any]) -> None:
        for name, output in outputs.items():
            if await pulumi.Output.from_input(output).is_secret():
                (secret if secret is not None else set()).add(name)

    @pulumi.runtime.test
    def body() -> Any:
        program()
        outputs = pulumi.runtime.get_root_resource().outputs
        checked = pulumi.Output.from_input(asyncio.ensure_future(secrets_of(outputs)))
        return pulumi.Output.all(checked, pulumi.Output.all(**outputs).apply(exports.update))

    body()
    return exports


def by_type(monitor: RecordingMonitor, token: str) -> dict[str, dict[str, Any]]:
    """What the program registered of one Pulumi type (``gcp:cloudrunv2/service:Service``), by name."""
    return {name: r for name, r in monitor.registered.items() if r["type"] == token}
