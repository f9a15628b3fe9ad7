"""Value types the primitives take (``buildflow.types.gcp``, ...)."""
