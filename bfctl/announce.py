"""What ``bfctl serve`` and a flow run as a script (``python main.py``) print once the flow is
served: where, how many worker processes, and every route."""

from __future__ import annotations

from typing import Any

from bfctl import console


def served_routes(flow: Any) -> list[tuple[str, str]]:
    """(method, path) of every route, then a ``CONSUME`` line per consumer naming its source."""
    from bfctl.runtime import server

    return server.describe_routes(flow) + [
        ("CONSUME", f"{c.name} ← {type(c.source_primitive).__name__} {c.source_primitive.primitive_id()}")
        for c in flow.consumers
    ]


def announce(
    target: str, routes: list[tuple[str, str]], as_json: bool, dashboard: bool, urls: list[str], workers: int
) -> None:
    """Print where the flow is served, called once the sockets are bound.

    The first line is the contract for scripts and tests: they wait for
    "Serving <target> on <url>" and then know requests will be accepted. With JSON logs it is
    the message of one log line, and the routes are the message of the next. The worker count
    is shown when there is more than one (each a process of its own, sharing the port).
    """
    base = urls[0].rstrip("/")
    width = max((len(method) for method, _ in routes), default=0)
    more = [f"  also on {url}" for url in urls[1:]]
    if workers > 1:
        more.append(f"  {workers} worker processes")
    # a route is a path under the base URL; a consumer line names its source instead
    listed = [f"  {method:<{width}}  {base + path if path.startswith('/') else path}" for method, path in routes]
    if as_json:
        import logging

        log = logging.getLogger("bfctl")
        log.info("Serving %s on %s", target, urls[0])
        log.info("Routes:\n%s", "\n".join([*more, *listed]))
        if dashboard:
            log.info("Dashboard on %s/_bf/", base)
        return
    console.info(f"Serving {target} on {urls[0]}", "bold green")
    for line in more:
        console.info(line, "green")
    for line in listed:
        console.info(line, "cyan")
    if dashboard:
        console.info(f"Dashboard on {base}/_bf/", "bold magenta")
    console.info("Press Ctrl+C to stop.", "dim")
