"""BuildFlow's import path ``buildflow.io.gcp.pubsub_topic``: the Pub/Sub topic primitive."""

from buildflow.io.gcp.pubsub import GCPPubSubTopic

__all__ = ["GCPPubSubTopic"]
