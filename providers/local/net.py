"""Where the local target's servers and emulators listen: loopback ports of this machine."""

import socket
import sys

#: The address every server of the local target listens on: nothing is reachable from elsewhere.
HOST = "127.0.0.1"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port``; postgres binds with SO_REUSEADDR, so do we, and a
    port still in TIME_WAIT from the server's previous run counts as free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if sys.platform != "win32":  # there it would mean "share the port", not "reuse it"
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True
