"""``buildflow.io.gcp.gcs_bucket``: the Cloud Storage bucket (BuildFlow's module was ``storage``)."""

from buildflow.io.gcp.storage import GCSBucket

__all__ = ["GCSBucket"]
