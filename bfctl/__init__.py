"""bfctl: serve a flow declared with the BuildFlow-compatible SDK.

The package root stays import-light on purpose: ``bfctl --help`` and
``bfctl --version`` must start instantly, so the SDK and the runtime are only
imported by the commands that need them.
"""

from importlib.metadata import PackageNotFoundError, version as _dist_version


def _installed_version() -> str:
    """Version of the installed ``bfctl`` distribution, or ``0+unknown`` when
    running from a source tree that was never installed."""
    try:
        return _dist_version("bfctl")
    except PackageNotFoundError:
        return "0+unknown"


__version__ = _installed_version()
