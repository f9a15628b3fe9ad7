"""Whether the dashboard is served: on by default only where nobody else can reach it.

It shows routes, resources' names and outputs, rows of tables and log lines: what a public
service must never show. So it is on by default only on the local target bound to loopback;
asked for when bound to another interface, it still answers loopback peers only (an SSH tunnel
reaches it, the network does not); and a deployed Cloud Run service, whose every request comes
through Google's proxy, refuses to start with it rather than expose it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from bfctl.runtime.errors import StartupError

PATH = "/_bf/"
#: ``on`` or ``off``; ``bfctl serve --dashboard/--no-dashboard`` says the same.
VARIABLE = "BFCTL_DASHBOARD"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def wanted(requested: bool | None, target: str, host: str, environ: Mapping[str, str]) -> bool:
    """``requested`` (else ``$BFCTL_DASHBOARD``), else on for the local target on loopback."""
    if requested is None:
        value = environ.get(VARIABLE, "").strip().lower()
        if value not in ("", "on", "off"):
            raise StartupError(f"{VARIABLE}={value!r}: use on or off")
        requested = {"on": True, "off": False}.get(value)
    if requested and environ.get("K_SERVICE"):
        raise StartupError(
            "the dashboard is never served by a deployed service (its requests come from anywhere): "
            f"unset {VARIABLE}, and open it with `bfctl serve` on your machine"
        )
    if requested is None:
        return target == "local" and is_loopback(host) and not environ.get("K_SERVICE")
    return requested
