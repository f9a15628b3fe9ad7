"""What a deployed flow's container is told, and where it is asked whether it is up.

The gcp target sets these when it declares the Cloud Run service, and ``bfctl serve`` inside
the image reads them: one module, so the two sides cannot drift apart.
"""

from __future__ import annotations

#: The stack's outputs (never a secret) as JSON: ``{"target": "gcp", "outputs": {id: {...}}}``.
OUTPUTS_ENV = "BUILDFLOW_OUTPUTS"
#: How many worker processes ``bfctl serve`` starts when ``--workers`` is not given.
WORKERS_ENV = "BFCTL_WORKERS"
#: Where sampled traces go: ``cloudtrace`` (set on gcp), ``otlp`` or ``off``.
TRACES_ENV = "BFCTL_TRACES"
#: The sizes of the database pools that fit the instances' connections, as JSON:
#: ``{database id: [pool_size, max_overflow]}`` (the connection budget the plan worked out).
POOLS_ENV = "BUILDFLOW_DB_POOLS"
#: The route that answers once the server accepts requests (startup probes).
HEALTH_PATH = "/_bf/health"
