"""Primitives each target makes with its own service (``buildflow.io.portable``)."""

from buildflow.io.portable.table import AnalysisTable

__all__ = ["AnalysisTable"]
