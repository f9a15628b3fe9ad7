"""BuildFlow: describe a whole backend in one Python module."""

from buildflow.flow import Flow, FlowOptions
from buildflow.processors import Consumer, Method, ProcessorOptions, collector, consumer, endpoint
from buildflow.service import Service


def __getattr__(name: str) -> str:
    """``__version__`` read from the installed distribution on first use: a flow imports this
    package at every start, and the lookup imports importlib.metadata and scans site-packages."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from importlib.metadata import version

        value = version("bfctl")
    except Exception:  # not installed: running from a source tree
        value = "0+unknown"
    globals()["__version__"] = value
    return value


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
