"""``GCPPubSubTopic`` and ``GCPPubSubSubscription`` on the local target: Google's Pub/Sub
emulator, or a durable log.

With the gcloud CLI and its ``pubsub-emulator`` component installed, apply runs the emulator
(``gcloud beta emulators pubsub start``) as a service of the stack and creates the topics and
subscriptions in it (with their ack deadline and dead-letter policy, which the emulator honours:
it counts delivery attempts and forwards to the dead-letter topic); sinks publish and consumers
pull with the same client code as in the cloud. It stops with ``bfctl destroy``, or once the
stack's folder is gone (``guard``). The emulator keeps everything in memory, so when
it has to be started again (after a reboot) the recorded topics and subscriptions are created
again. Without gcloud, each topic is a JSON-lines log ``<stack dir>/pubsub/<project>/<topic>.jsonl``
that sinks append to and fsync, and each subscription a record
``<stack dir>/pubsub/<project>/<subscription>.subscription.json`` of what its consumers were
handed and acked (``buildflow.storage.log_subscription``). ``BFCTL_LOCAL_PUBSUB=log`` (or
``emulator``) forces the choice.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from bfctl.providers.errors import UnsupportedPrimitiveError
from bfctl.providers.local.errors import LocalTargetError
from bfctl.providers.local.family import Family, forget
from bfctl.providers.local.guard import guarded
from bfctl.providers.local.net import HOST
from bfctl.providers.local.services import DetachedService, answers, call
from bfctl.providers.state import ResourceState, State, record
from buildflow.io.gcp import GCPPubSubSubscription, GCPPubSubTopic
from buildflow.io.primitive import Primitive, PrimitiveType
from buildflow.storage import durable, log_subscription
from buildflow.storage.engines import Engine

TOPIC = GCPPubSubTopic.resource_type
SUBSCRIPTION = GCPPubSubSubscription.resource_type
LOG_STAND_IN = "durable local log standing in for Pub/Sub"
MODE_VARIABLE = "BFCTL_LOCAL_PUBSUB"


def _up(port: int) -> bool:
    return answers(f"http://{HOST}:{port}/")


@dataclasses.dataclass
class PubSubEmulator(Primitive):
    """The stack's Pub/Sub emulator: implied by the topics, never declared by a flow."""

    primitive_type: ClassVar[PrimitiveType] = PrimitiveType.LOCAL
    resource_type: ClassVar[str] = "local.PubSubEmulator"

    def primitive_id(self) -> str:
        return "local:pubsub-emulator"

    def desired_properties(self) -> dict[str, Any]:
        return {"status": "running"}


EMULATOR_ID = PubSubEmulator().primitive_id()


def emulator_available() -> bool:
    """gcloud with the pubsub-emulator component, and Java to run it."""
    gcloud = shutil.which("gcloud")
    if gcloud is None or shutil.which("java") is None:
        return False
    sdk = Path(os.path.realpath(gcloud)).parent.parent
    return (sdk / "platform" / "pubsub-emulator").is_dir()


def mode() -> str:
    """``emulator`` or ``log``: what stands behind topics on this machine."""
    forced = os.environ.get(MODE_VARIABLE, "").strip().lower()
    if forced == "log":
        return "log"
    if forced == "emulator" and not emulator_available():
        raise UnsupportedPrimitiveError(
            f"{MODE_VARIABLE}=emulator, but the Pub/Sub emulator is not installed: install the gcloud CLI and "
            "run `gcloud components install pubsub-emulator beta` (it needs Java)"
        )
    return "emulator" if emulator_available() else "log"


class PubSubFamily(Family):
    primitive_types = (GCPPubSubTopic, GCPPubSubSubscription, PubSubEmulator)

    @property
    def service(self) -> DetachedService:
        return DetachedService(self.root / "pubsub-emulator", "pubsub-emulator")

    def implied(self, primitives: list[Primitive]) -> list[Primitive]:
        topics = any(isinstance(p, GCPPubSubTopic) for p in primitives)
        return [PubSubEmulator()] if topics and mode() == "emulator" else []

    def desired_properties(self, primitive: Primitive) -> dict[str, Any]:
        properties = primitive.desired_properties()
        if isinstance(primitive, (GCPPubSubTopic, GCPPubSubSubscription)):
            properties["engine"] = mode()  # gcloud installed later: they move to the emulator
        return properties

    # -- refresh ---------------------------------------------------------------------------------
    def refresh(self, state: State) -> None:
        emulator = state.resources.get(EMULATOR_ID)
        port = self.service.running_port() if emulator else None
        if emulator is not None:
            emulator.properties["status"] = "running" if port else "stopped"
        for rec in [r for r in state.resources.values() if r.resource_type in (TOPIC, SUBSCRIPTION)]:
            if rec.properties.get("engine") == "log":
                if not self.absolute(rec.private["log" if rec.resource_type == TOPIC else "record"]).exists():
                    del state.resources[rec.resource_id]
            elif port is None or call("GET", self._url(port, self._api_name(rec))) != 200:
                del state.resources[rec.resource_id]  # the emulator forgot it (restarted, or gone)

    # -- apply -----------------------------------------------------------------------------------
    def put(self, state: State, primitive: Primitive) -> str:
        if isinstance(primitive, PubSubEmulator):
            port = self._start(state, primitive)
            return f"Pub/Sub emulator on {HOST}:{port}"
        if isinstance(primitive, GCPPubSubSubscription):
            return self._put_subscription(state, primitive)
        assert isinstance(primitive, GCPPubSubTopic)
        engine = mode()
        properties = self.desired_properties(primitive)
        if engine == "log":
            log = self.root / "pubsub" / primitive.project_id / f"{primitive.topic_name}.jsonl"
            durable.make_dirs(log.parent)
            log.touch()
            outputs = {"engine": Engine.LOG, "path": str(log), "stand_in": LOG_STAND_IN}
            record(state, primitive, properties, outputs, {"log": self.relative(log)}, parents=[])
            return f"{LOG_STAND_IN}: {self.relative(log)}"
        port = self._emulator_port(state)
        status = call("PUT", self._url(port, primitive.topic_id), {})
        if status not in (200, 409):
            raise LocalTargetError(f"the Pub/Sub emulator answered {status} creating {primitive.topic_id}")
        record(state, primitive, properties, self._topic_outputs(port, primitive.topic_id), parents=[EMULATOR_ID])
        return f"in the Pub/Sub emulator on {HOST}:{port}"

    def _put_subscription(self, state: State, primitive: GCPPubSubSubscription) -> str:
        properties = self.desired_properties(primitive)
        settings = {
            "ack_deadline_seconds": primitive.ack_deadline_seconds,
            "max_delivery_attempts": primitive.max_delivery_attempts,
        }
        if properties["engine"] == "log":
            path = self.root / "pubsub" / primitive.project_id / f"{primitive.subscription_name}.subscription.json"
            topic = state.resources[primitive.parents()[0].primitive_id()].outputs["path"]  # its topic's log
            dead_letter = primitive.dead_letter_topic
            durable.make_dirs(path.parent)
            log_subscription.create(path, Path(topic))
            outputs = {
                "engine": Engine.LOG,
                "path": str(path),
                "log": topic,
                **settings,
                "dead_letter_log": state.resources[dead_letter.primitive_id()].outputs["path"] if dead_letter else None,
                "stand_in": f"a subscription of the {LOG_STAND_IN}",
            }
            record(state, primitive, properties, outputs, {"record": self.relative(path)})
            return f"a subscription of the {LOG_STAND_IN}: {self.relative(path)}"
        port = self._emulator_port(state)
        body = self._subscription_body(primitive)
        url = self._url(port, primitive.subscription_id)
        status = call("PUT", url, body)
        if status == 409:  # an update: the settings that can change without a new subscription
            mask = "ackDeadlineSeconds,messageRetentionDuration,deadLetterPolicy"
            status = call("PATCH", url, {"subscription": body, "updateMask": mask})
        if status != 200:
            raise LocalTargetError(f"the Pub/Sub emulator answered {status} making {primitive.subscription_id}")
        outputs = {**self._subscription_outputs(port, primitive.subscription_id), **settings}
        record(state, primitive, properties, outputs, {"body": body})
        return f"in the Pub/Sub emulator on {HOST}:{port}"

    @staticmethod
    def _subscription_body(primitive: GCPPubSubSubscription) -> dict[str, Any]:
        """The subscription as the Pub/Sub REST API takes it."""
        body: dict[str, Any] = {
            "topic": primitive.topic.topic_id if primitive.topic else None,
            "ackDeadlineSeconds": primitive.ack_deadline_seconds,
            "messageRetentionDuration": primitive.message_retention_duration,
            "enableExactlyOnceDelivery": primitive.enable_exactly_once_delivery,
        }
        if primitive.dead_letter_topic is not None:
            body["deadLetterPolicy"] = {
                "deadLetterTopic": primitive.dead_letter_topic.topic_id,
                "maxDeliveryAttempts": primitive.max_delivery_attempts,
            }
        return body

    def _start(self, state: State, emulator: Primitive) -> int:
        known = state.resources.get(EMULATOR_ID)
        data = self.service.directory / "data"
        data.mkdir(parents=True, exist_ok=True)

        def command(port: int) -> list[str]:
            return guarded(self.service.directory, [
                str(shutil.which("gcloud")), "beta", "emulators", "pubsub", "start",
                f"--host-port={HOST}:{port}", "--project=bfctl-local", f"--data-dir={data}", "--quiet",
            ])  # fmt: skip

        port = self.service.start(command, _up, known.private.get("port") if known else None)
        outputs = {"emulator_host": f"{HOST}:{port}", "api_root": f"http://{HOST}:{port}/v1"}
        private = {"directory": self.relative(self.service.directory), "port": port}
        record(state, emulator, {"status": "running"}, outputs, private)
        return port

    def _emulator_port(self, state: State) -> int:
        port = self.service.running_port()
        if port is None:
            raise LocalTargetError("the Pub/Sub emulator is not running: plan and apply again")
        return port

    @staticmethod
    def _url(port: int, name: str) -> str:
        """The emulator's address of a topic or subscription (``projects/<p>/topics/<t>``...)."""
        return f"http://{HOST}:{port}/v1/{name}"

    @staticmethod
    def _api_name(rec: ResourceState) -> str:
        """The name the Pub/Sub API knows a recorded topic or subscription by."""
        if rec.resource_type == TOPIC:
            return rec.resource_id
        return f"projects/{rec.properties['project_id']}/subscriptions/{rec.properties['subscription_name']}"

    @staticmethod
    def _emulator_outputs(port: int) -> dict[str, Any]:
        return {
            "engine": Engine.PUBSUB,
            "emulator_host": f"{HOST}:{port}",  # PUBSUB_EMULATOR_HOST for Google's client libraries
            "api_root": f"http://{HOST}:{port}/v1",
        }

    @classmethod
    def _topic_outputs(cls, port: int, topic_id: str) -> dict[str, Any]:
        return {**cls._emulator_outputs(port), "topic": topic_id}

    @classmethod
    def _subscription_outputs(cls, port: int, subscription_id: str) -> dict[str, Any]:
        return {**cls._emulator_outputs(port), "subscription": subscription_id}

    # -- delete ----------------------------------------------------------------------------------
    def delete(self, state: State, rec: ResourceState, doomed: set[str]) -> str:
        if rec.resource_type == PubSubEmulator.resource_type:
            self.service.stop()
            shutil.rmtree(self.service.directory, ignore_errors=True)
            forget(state, rec.resource_id)
            return "emulator stopped, its topics with it"
        if rec.resource_type == SUBSCRIPTION:
            return self._delete_subscription(state, rec, doomed)
        if rec.properties.get("engine") == "log":
            log = self.absolute(rec.private["log"])
            log.unlink(missing_ok=True)
            for folder in (log.parent, log.parent.parent):
                try:
                    folder.rmdir()
                except OSError:
                    break
            del state.resources[rec.resource_id]
            return "log deleted"
        port = self.service.running_port()
        if EMULATOR_ID in doomed or port is None:
            del state.resources[rec.resource_id]
            return "goes with the emulator"
        call("DELETE", self._url(port, rec.resource_id))
        del state.resources[rec.resource_id]
        return "deleted"

    def _delete_subscription(self, state: State, rec: ResourceState, doomed: set[str]) -> str:
        del state.resources[rec.resource_id]
        if rec.properties.get("engine") == "log":
            log_subscription.remove(self.absolute(rec.private["record"]))
            return "record deleted"
        port = self.service.running_port()
        if EMULATOR_ID in doomed or port is None:
            return "goes with the emulator"
        call("DELETE", self._url(port, self._api_name(rec)))
        return "deleted"

    # -- serving ---------------------------------------------------------------------------------
    def client_environment(self, state: State) -> dict[str, str]:
        emulator = state.resources.get(EMULATOR_ID)
        port = emulator.private.get("port") if emulator is not None else None
        return {"PUBSUB_EMULATOR_HOST": f"{HOST}:{port}"} if port else {}

    def ensure_running(self, state: State, started: Callable[[str], None]) -> bool:
        emulator = state.resources.get(EMULATOR_ID)
        if emulator is None:
            return False
        before = emulator.private.get("port")
        port = self._start(state, PubSubEmulator())
        topics = state.children_of(EMULATOR_ID)
        for topic in topics:  # a restarted emulator has no topics, nor subscriptions
            if call("GET", self._url(port, topic.resource_id)) != 200:
                call("PUT", self._url(port, topic.resource_id), {})
            topic.outputs = self._topic_outputs(port, topic.resource_id)
        subscriptions = {s.resource_id: s for t in topics for s in state.children_of(t.resource_id)}
        for sub in subscriptions.values():
            name = self._api_name(sub)
            if call("GET", self._url(port, name)) != 200:
                call("PUT", self._url(port, name), sub.private["body"])
            sub.outputs = {**sub.outputs, **self._subscription_outputs(port, name)}
        return port != before
