"""Whether the dashboard is served: on by default only where nobody else can reach it.

It shows routes, resources' names and outputs, rows of tables and log lines: what a public
service must never show. So it is on by default only on the local target bound to loopback;
asked for when bound to another interface, it still answers loopback peers only (an SSH tunnel
reaches it, the network does not); and a deployed Cloud Run service, whose every request comes
through Google's proxy, refuses to start with it rather than expose it. A request must also name
this machine in its ``Host`` header (an address, or localhost): a web page whose host name was
made to resolve to 127.0.0.1 (DNS rebinding) reaches the server from the user's own browser, but
names its own host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from bfctl.runtime.errors import StartupError

PATH = "/_bf/"
#: ``on`` or ``off``; ``bfctl serve --dashboard/--no-dashboard`` says the same.
VARIABLE = "BFCTL_DASHBOARD"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address, ``[::1]`` as in URLs, or ``localhost``) is this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


def typed_by_hand(host_header: str) -> bool:
    """Whether a ``Host`` header names the server as only its user would: by an IP address or
    ``localhost``. A page whose own name was made to resolve to this machine (DNS rebinding)
    sends that name."""
    if host_header.startswith("["):
        name = host_header.partition("]")[0] + "]"
    else:
        name = host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return name.lower() == "localhost"
    return True


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
