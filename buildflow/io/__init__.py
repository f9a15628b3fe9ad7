"""Primitives: declarations of the infrastructure a flow uses."""

from buildflow.io.primitive import Primitive, PrimitiveType, PrimitiveValidationError

__all__ = ["Primitive", "PrimitiveType", "PrimitiveValidationError"]
