"""Pub/Sub: a topic (as a sink, each row is published as one JSON message) and a subscription
(a consumer's source)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, ClassVar

from buildflow.io.gcp.bigquery import check_project_id
from buildflow.io.gcp.cloud_sql import _fail
from buildflow.io.primitive import GCPPrimitive, Primitive

# Pub/Sub: 3-255 characters, starting with a letter; letters, digits and - _ . ~ + %; not "goog...".
_TOPIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._~+%-]{2,254}")


@dataclasses.dataclass
class GCPPubSubTopic(GCPPrimitive):
    """A Pub/Sub topic."""

    project_id: str
    topic_name: str

    resource_type: ClassVar[str] = "gcp.pubsub.Topic"
    replace_properties: ClassVar[frozenset[str]] = frozenset({"project_id", "topic_name"})

    def __post_init__(self) -> None:
        self.validate()

    def primitive_id(self) -> str:
        return self.topic_id

    @property
    def topic_id(self) -> str:
        """``projects/<project>/topics/<topic>``, the name the Pub/Sub API takes."""
        return f"projects/{self.project_id}/topics/{self.topic_name}"

    def cloud_console_url(self) -> str:
        return f"https://console.cloud.google.com/cloudpubsub/topic/detail/{self.topic_name}?project={self.project_id}"

    def desired_properties(self) -> dict[str, Any]:
        return {"project_id": self.project_id, "topic_name": self.topic_name}

    def validate(self) -> None:
        check_project_id(self, self.project_id)
        name = self.topic_name
        if not isinstance(name, str) or not _TOPIC_NAME.fullmatch(name) or name.startswith("goog"):
            _fail(
                self,
                f"topic_name {name!r} is not a valid Pub/Sub topic name: 3 to 255 letters, digits or "
                "- _ . ~ + %, starting with a letter and not with 'goog'",
            )


@dataclasses.dataclass
class GCPPubSubSubscription(GCPPrimitive):
    """A Pub/Sub subscription: a consumer's source. Managed, it needs ``.options(topic=...)``."""

    project_id: str
    subscription_name: str

    # Options (``.options(...)``), BuildFlow's defaults; class attributes keep the constructor BuildFlow's.
    ack_deadline_seconds = 600
    message_retention_duration = "1200s"
    enable_exactly_once_delivery = False
    topic: GCPPubSubTopic | None = dataclasses.field(default=None, init=False)
    batch_size = 1_000
    include_attributes = False
    #: After this many deliveries a message goes to ``dead_letter_topic`` (None: redelivered forever).
    max_delivery_attempts: int | None = dataclasses.field(default=None, init=False)
    dead_letter_topic: GCPPubSubTopic | None = dataclasses.field(default=None, init=False)

    resource_type: ClassVar[str] = "gcp.pubsub.Subscription"
    replace_properties: ClassVar[frozenset[str]] = frozenset({"project_id", "subscription_name", "topic"})
    option_defaults: ClassVar[dict[str, Any]] = {
        "ack_deadline_seconds": 600,
        "message_retention_duration": "1200s",
        "enable_exactly_once_delivery": False,
        "topic": None,
        "batch_size": 1_000,
        "include_attributes": False,
        "max_delivery_attempts": None,
        "dead_letter_topic": None,
    }

    def __post_init__(self) -> None:
        self.validate()

    def options(self, **kwargs: Any) -> GCPPubSubSubscription:
        """BuildFlow's ``options``: every option not given goes back to its default."""
        super().options(**{**self.option_defaults, **kwargs})
        self.validate()
        return self

    def primitive_id(self) -> str:
        return f"{self.project_id}/{self.subscription_name}"

    @property
    def subscription_id(self) -> str:
        """``projects/<project>/subscriptions/<name>``, the name the Pub/Sub API takes."""
        return f"projects/{self.project_id}/subscriptions/{self.subscription_name}"

    def cloud_console_url(self) -> str:
        return (
            f"https://console.cloud.google.com/cloudpubsub/subscription/detail/{self.subscription_name}"
            f"?project={self.project_id}"
        )

    def parents(self) -> list[Primitive]:
        return [t for t in (self.topic, self.dead_letter_topic) if t is not None]

    def enable_managed(self) -> None:
        if self.topic is None:
            _fail(self, "a managed subscription needs its topic: .options(topic=GCPPubSubTopic(...))")
        super().enable_managed()

    def desired_properties(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "subscription_name": self.subscription_name,
            "topic": self.topic.topic_id if self.topic is not None else None,
            "ack_deadline_seconds": self.ack_deadline_seconds,
            "message_retention_duration": self.message_retention_duration,
            "enable_exactly_once_delivery": self.enable_exactly_once_delivery,
            "max_delivery_attempts": self.max_delivery_attempts,
            "dead_letter_topic": self.dead_letter_topic.topic_id if self.dead_letter_topic is not None else None,
        }

    def validate(self) -> None:
        check_project_id(self, self.project_id)
        name = self.subscription_name
        if not isinstance(name, str) or not _TOPIC_NAME.fullmatch(name) or name.startswith("goog"):
            _fail(
                self,
                f"subscription_name {name!r} is not a valid Pub/Sub subscription name: 3 to 255 letters, digits "
                "or - _ . ~ + %, starting with a letter and not with 'goog'",
            )
        for option in ("topic", "dead_letter_topic"):
            value = getattr(self, option)
            if value is not None and not isinstance(value, GCPPubSubTopic):
                _fail(self, f"{option} must be a GCPPubSubTopic, got {value!r}")
        if not isinstance(self.ack_deadline_seconds, int) or not 10 <= self.ack_deadline_seconds <= 600:
            _fail(self, f"ack_deadline_seconds must be 10 to 600, got {self.ack_deadline_seconds!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            _fail(self, f"batch_size must be a positive number of messages, got {self.batch_size!r}")
        attempts = self.max_delivery_attempts
        if attempts is not None and (not isinstance(attempts, int) or not 5 <= attempts <= 100):
            _fail(self, f"max_delivery_attempts must be 5 to 100 (Pub/Sub's range) or None, got {attempts!r}")
        if (attempts is None) != (self.dead_letter_topic is None):
            _fail(self, "max_delivery_attempts and dead_letter_topic go together: set both, or neither")
