"""BuildFlow's import path ``buildflow.io.gcp.pubsub_subscription``: the Pub/Sub subscription primitive."""

from buildflow.io.gcp.pubsub import GCPPubSubSubscription

__all__ = ["GCPPubSubSubscription"]
