"""bfctl: serve a flow declared with the BuildFlow-compatible SDK.

The package root stays import-light on purpose: ``bfctl --help`` and
``bfctl --version`` must start instantly, so the SDK and the runtime are only
imported by the commands that need them, and even ``importlib.metadata``
(tens of milliseconds with its email-parsing imports) waits until
``__version__`` is first read.
"""

from __future__ import annotations

from typing import Any


def _installed_version() -> str:
    """Version of the installed ``bfctl`` distribution, or ``0+unknown`` when
    running from a source tree that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bfctl")
    except PackageNotFoundError:
        return "0+unknown"


def __getattr__(name: str) -> Any:
    """Compute ``__version__`` on first use and cache it as a module global."""
    if name == "__version__":
        value = _installed_version()
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
