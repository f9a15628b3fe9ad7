"""Serving a flow once its settings are known: what ``bfctl serve`` does after parsing its
options (by Typer, or by ``bfctl.flags`` without it), and what the image's entrypoint
(``bfctl.container``) does with the settings Cloud Run gives it.

Typer is not imported here (only the exit code of an error users can act on needs it, and
``reported_errors`` imports it then): a container that serves must not pay for the CLI.
"""

from __future__ import annotations

import os
import sys
from functools import partial
from typing import Any, NoReturn

from bfctl import console
from bfctl.commands import exit_codes, report_startup_error, reported_errors


def serve_and_exit(target: str | None, **settings: Any) -> NoReturn:
    """``serve_flow`` outside Typer: the process ends with the server's exit code, with the one
    an error users can act on asks for, or with 1 and the message of any other error (never a
    raw traceback)."""
    try:
        with exit_codes():
            code = serve_flow(target, **settings)
    except KeyboardInterrupt:  # Ctrl+C before serving took the signal over: as the Typer CLI ends
        print("\nAborted!", file=sys.stderr)  # noqa: T201 - its words, on stderr
        sys.exit(1)
    except Exception as exc:
        console.unexpected(exc)
        sys.exit(1)
    sys.exit(code)


def serve_flow(
    target: str | None,
    *,
    host: str | None,
    port: int | None,
    workers: int | None,
    grace: float,
    idle_timeout: float,
    access_log: bool,
    log_format: str | None,
    stack: str,
    infra_target: str,
    apply_first: bool,
    gcp_project: str | None,
    gcp_region: str | None,
    loop: str,
    threads: int | None,
    dashboard: bool | None,
) -> int:
    """Serve the flow ``target`` names until stopped; the exit code. An error users can act on
    is reported as ``bfctl serve`` reports it (a JSON log line when logs are JSON) and ends in
    ``typer.Exit(1)``."""
    with reported_errors():
        from bfctl.runtime import server

        log_format = server.log_format_of(log_format)
    report = log_error if log_format == "json" else console.error
    with reported_errors(report):
        host, port = server.listen_address(host, port, os.environ)
        from bfctl import announce, infra
        from bfctl.runtime.dashboard import policy

        dashboard = policy.wanted(dashboard, infra_target, host, os.environ)
        gcp = {"project": gcp_project, "region": gcp_region}
        loaded, apply_first = infra.load_for_serving(target, infra_target, stack, apply_first, gcp)
        outputs = infra.outputs_for_serving(loaded, infra_target, stack, apply_first, gcp)
        routes = announce.served_routes(loaded.flow)
        return server.serve(
            loaded.flow,
            host=host,
            port=port,
            workers=workers,
            grace=grace,
            access_log=access_log,
            on_ready=partial(announce.announce, loaded.target, routes, log_format == "json", dashboard),
            outputs=outputs,
            loop=loop,
            threads=threads,
            on_worker_error=partial(report_startup_error, report=report),
            log_format=log_format,
            idle_timeout=idle_timeout,
            dashboard=dashboard,
        )


def log_error(message: str, detail: str | None = None) -> None:
    """The error as one JSON log line, as ``serve --log-format json`` logs everything: Cloud
    Logging would make each line of a plain multi-line report an entry of its own."""
    import logging

    from bfctl.runtime import cloud_logging

    cloud_logging.configure()
    text = f"{message}\n{detail.rstrip()}" if detail else message
    logging.getLogger("bfctl").error("Error: %s", text)
