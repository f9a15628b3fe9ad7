"""A port another program holds: what to say, with a port that is free to use instead."""

from __future__ import annotations

import errno
import socket

#: How many ports after a taken one are tried for a free one to suggest.
NEARBY = 20


def bindable(host: str, port: int) -> bool:
    """Whether a server could bind ``host:port`` now, with the options ``serve`` binds with."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def is_taken(error: OSError) -> bool:
    return error.errno == errno.EADDRINUSE


def free_near(host: str, port: int) -> int | None:
    """The first port after ``port`` that can be bound now: one a user can remember, unlike
    what ``--port 0`` picks."""
    return next((p for p in range(port + 1, min(port + 1 + NEARBY, 65536)) if bindable(host, p)), None)


def instead(host: str, port: int) -> str:
    """The ``--port`` options that serve when ``host:port`` is taken: a free port near it, and 0."""
    near = free_near(host, port)
    return (f"`--port {near}` (free now), or " if near is not None else "") + "`--port 0` to take any free port"


def taken(host: str, port: int) -> str:
    """The message for ``host:port`` held by another program, naming the options that serve anyway."""
    return (
        f"cannot listen on {host}:{port}: another program listens there. Stop it, or serve on another "
        f"port: {instead(host, port)} (the URL is printed)"
    )
