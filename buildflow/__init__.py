"""BuildFlow: describe a whole backend in one Python module."""

from buildflow.flow import Flow, FlowOptions
from buildflow.processors import Consumer, Method, ProcessorOptions, collector, consumer, endpoint
from buildflow.service import Service

try:
    from importlib.metadata import version as _version

    __version__ = _version("bfctl")
except Exception:  # not installed: running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "Consumer",
    "Flow",
    "FlowOptions",
    "Method",
    "ProcessorOptions",
    "Service",
    "__version__",
    "collector",
    "consumer",
    "endpoint",
]
