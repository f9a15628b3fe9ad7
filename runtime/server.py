"""Serving a flow: one worker in-process, or N forked workers sharing the port.

GLOBAL dependencies are built in the parent before the workers fork, so every worker shares
them copy-on-write; each worker builds its own REPLICA dependencies when it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from types import FrameType
from typing import Any, NotRequired, TypedDict, Unpack

from aiohttp import web
from aiohttp.web_log import AccessLogger

from bfctl.runtime import bodies, cloud_logging, ports, stopping
from bfctl.runtime.app import FlowApp
from bfctl.runtime.cloud_logging import JsonAccessLogger, JsonLogs
from bfctl.runtime.errors import StartupError, one_line
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.dependencies.scopes import Scope
from buildflow.flow import Flow

log = logging.getLogger("buildflow.runtime")

OnReady = Callable[[list[str]], None]
#: What ``serve`` calls once every worker listens: the URLs, and how many worker processes serve them.
OnServing = Callable[[list[str], int], None]
#: Reports a forked worker's StartupError (it cannot propagate to the parent's caller).
OnWorkerError = Callable[[StartupError], None]


def describe_routes(flow: Flow) -> list[tuple[str, str]]:
    """(method, path) of every route the flow serves; raises StartupError if it cannot."""
    return FlowApp(flow).routes()


def use_event_loop(kind: str = "auto") -> str:
    """Pick the event loop for this process and the workers it forks; returns what was picked.

    ``auto`` takes uvloop when it is installed (it is a dependency where it builds), which
    serves 10-40% more requests per second than asyncio's own loop on these handlers.
    """
    if kind not in ("auto", "asyncio", "uvloop"):
        raise StartupError(f"unknown event loop {kind!r}: use auto, asyncio or uvloop")
    if kind == "asyncio":
        asyncio.set_event_loop_policy(None)
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise StartupError("--loop uvloop needs the uvloop package: pip install uvloop") from None
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def _configure_logging(json_logs: bool) -> None:
    if json_logs:
        cloud_logging.configure()
        return
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


#: Seconds in-flight requests get after SIGTERM: with the sinks' final writes and teardowns it
#: fits in the 10 s Cloud Run leaves between SIGTERM and SIGKILL.
DEFAULT_GRACE = 8.0
#: Seconds a connection may go without sending a whole request head: idle between requests, or
#: trickling its header lines (aiohttp's keep-alive timer covers both; left alone, a connection
#: that sends a header line every few seconds is kept an hour). Half what nginx and Node give a
#: request head (60 s), six times uvicorn's keep-alive (5 s): proxies reuse idle connections.
DEFAULT_IDLE_TIMEOUT = 30.0
#: Where ``bfctl serve`` listens when neither ``--port`` nor ``$PORT`` says.
DEFAULT_PORT = 8000
DEFAULT_HOST = "127.0.0.1"
#: Cloud Run (and platforms like it) name the port to listen on in ``$PORT``.
PORT_VARIABLE = "PORT"


def listen_address(host: str | None, port: int | None, environ: Mapping[str, str]) -> tuple[str, int]:
    """The interface and port to bind: what was given, else what the platform says.

    The port falls back to ``$PORT``, then 8000. The interface falls back to 0.0.0.0 on Cloud
    Run only (``K_SERVICE`` set), whose proxy reaches the container from outside it; anywhere
    else to loopback, so a ``PORT`` left in a developer's shell never exposes the server.
    """
    if port is None:
        value = environ.get(PORT_VARIABLE, "").strip()
        if not value:
            port = DEFAULT_PORT
        elif value.isdigit() and int(value) <= 65535:
            port = int(value)
        else:
            raise StartupError(f"{PORT_VARIABLE}={value!r} is not a TCP port number (0-65535)")
    if host is None:
        host = "0.0.0.0" if environ.get("K_SERVICE") else DEFAULT_HOST  # noqa: S104 - Cloud Run's proxy needs it
    return host, port


def bind_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if ports.is_taken(e):
            raise StartupError(ports.taken(host, port)) from None
        raise StartupError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.setblocking(False)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve_worker(
    flow_app: FlowApp,
    sock: socket.socket,
    *,
    grace: float = DEFAULT_GRACE,
    access_log: bool = False,
    on_ready: OnReady | None = None,
    stop: asyncio.Event | None = None,
    json_logs: JsonLogs | None = None,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    last_resort: bool = False,
) -> int:
    """Serve on ``sock`` until SIGTERM/SIGINT (or ``stop``), then drain and tear down.

    A signal stops the consumers' pulling at once, even in the middle of start-up (none starts
    after it). With ``last_resort`` (a process of its own: never in a caller's program), the
    process ends ``grace`` plus ``stopping.MARGIN`` seconds after the signal whatever is stuck.
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    deadline = stopping.LastResort(grace + stopping.MARGIN, f"worker {os.getpid()}") if last_resort else None

    def stop_now(signum: int) -> None:
        # said for SIGTERM (a platform or another program stopping it: worth a line in its logs);
        # Ctrl+C, or bfctl dev serving a change, is seen by whoever pressed or saved
        level = logging.DEBUG if signum == signal.SIGINT else logging.INFO
        log.log(level, "%s received: stopping, what is in flight gets %g s", signal.Signals(signum).name, grace)
        stop.set()
        flow_app.stop_consuming(grace)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if deadline is not None:
            deadline.arm()
        loop.call_soon_threadsafe(stop_now, signum)

    previous = stopping.install(on_signal)
    try:
        return await _serve(flow_app, sock, stop, grace, access_log, on_ready, json_logs, idle_timeout)
    finally:
        stopping.restore(previous)
        if deadline is not None:
            deadline.disarm()


async def _serve(
    flow_app: FlowApp,
    sock: socket.socket,
    stop: asyncio.Event,
    grace: float,
    access_log: bool,
    on_ready: OnReady | None,
    json_logs: JsonLogs | None,
    idle_timeout: float,
) -> int:
    app = flow_app.build()
    if json_logs is not None:
        json_logs.install(app)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        access_log_class=AccessLogger if json_logs is None else JsonAccessLogger,
        shutdown_timeout=grace,
        keepalive_timeout=idle_timeout,
        logger=bodies.PROTOCOL_LOG,
    )
    try:
        await runner.setup()
    except StartupError:
        raise
    except Exception as e:
        # No traceback logged here: the caller decides how much of ``__cause__`` to show
        # (bfctl shows the user's frames, all of them under BFCTL_DEBUG=1).
        raise StartupError(f"starting the app failed: {one_line(e)}") from e
    try:
        await web.SockSite(runner, sock, backlog=1024).start()
        # What start-up made lives as long as the worker: moved out of the cyclic collector's
        # reach, a collection triggered by request garbage no longer walks all of it. Requests
        # free what they make by reference counting; the youngest generation is collected after
        # 50,000 net allocations instead of 700 (a 100-row request alone makes 300). No full
        # collection first: it walks every object imported (10-25 ms before the first request
        # is answered) to free a few hundred, which frozen cost a few kilobytes.
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        if on_ready is not None:
            on_ready([_url(sock)])
        await stop.wait()
    finally:
        flow_app.stop_consuming(grace)  # stopped by ``stop`` rather than a signal
        await runner.cleanup()
    return 0


def serve(
    flow: Flow,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int | None = None,
    grace: float = DEFAULT_GRACE,
    access_log: bool = False,
    on_ready: OnServing | None = None,
    overrides: Mapping[Any, Any] | None = None,
    outputs: ResourceOutputs | None = None,
    loop: str = "auto",
    threads: int | None = None,
    on_worker_error: OnWorkerError | None = None,
    log_format: str | None = None,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    dashboard: bool = False,
) -> int:
    """Serve until stopped by a signal; returns the exit code. Blocks.

    ``outputs`` are the applied infrastructure's outputs, handed to dependencies. A
    StartupError in this process is raised; one in a forked worker goes to
    ``on_worker_error`` (default: ``Error: <message>`` on stderr) and the exit code is 1.
    ``log_format`` is ``text`` or ``json``; by default JSON on Cloud Run, else text.
    ``idle_timeout``: seconds a connection may go without sending a whole request head.
    ``dashboard``: serve the dashboard under /_bf/ (``dashboard.policy.wanted`` decides where).
    """
    json_logs = JsonLogs(cloud_logging.project_id(os.environ)) if log_format_of(log_format) == "json" else None
    _configure_logging(json_logs is not None)
    use_event_loop(loop)
    flow_app = FlowApp(flow, overrides, outputs=outputs, threads=threads)
    flow_app.dashboard = dashboard
    if json_logs is not None:
        flow_app.pool_class = cloud_logging.ContextThreadPool
    count = workers or flow_app.workers_wanted()
    if count < 1:
        raise StartupError(f"--workers must be at least 1, got {count}")
    if count == 1:
        sock = bind_socket(host, port, reuse_port=False)
        return asyncio.run(
            serve_worker(
                flow_app,
                sock,
                grace=grace,
                access_log=access_log,
                on_ready=None if on_ready is None else partial(_one_worker, on_ready),
                json_logs=json_logs,
                idle_timeout=idle_timeout,
                last_resort=True,
            )
        )
    return _serve_forked(
        flow_app, host, port, count, grace, access_log, on_ready, on_worker_error, json_logs, idle_timeout
    )


def _one_worker(on_ready: OnServing, urls: list[str]) -> None:
    on_ready(urls, 1)


def log_format_of(requested: str | None) -> cloud_logging.LogFormat:
    """The log format ``serve`` uses: as asked, else JSON on Cloud Run (``K_SERVICE`` set)."""
    return cloud_logging.log_format(requested, os.environ)


def _print_worker_error(error: StartupError) -> None:
    print(f"Error: {error}", file=sys.stderr, flush=True)  # noqa: T201 - a forked worker's one line


def _serve_forked(
    flow_app: FlowApp,
    host: str,
    port: int,
    count: int,
    grace: float,
    access_log: bool,
    on_ready: OnServing | None,
    on_worker_error: OnWorkerError | None = None,
    json_logs: JsonLogs | None = None,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
) -> int:
    import multiprocessing  # for the flag below: one worker (Cloud Run's usual case) needs none of it

    workers = _Workers()
    # From here on a stop signal is the supervisor's, even while GLOBAL dependencies are built:
    # it then forks no worker.
    previous = stopping.install(workers.stop)
    try:
        reuse_port = hasattr(socket, "SO_REUSEPORT")
        # Holding this socket keeps the port ours (and resolves port 0) until the workers bind.
        shared = bind_socket(host, port, reuse_port)
        port = shared.getsockname()[1]
        if not reuse_port:
            shared.listen(1024)
        pool = ThreadPoolExecutor(4, thread_name_prefix="bf-global")
        asyncio.run(_start_global(flow_app, pool))
        ready_r, ready_w = os.pipe()
        # Workers that fail alike (a REPLICA dependency, say) report once, not once each and interleaved.
        reported = multiprocessing.Value("b", 0)
        # A signal that comes while forking waits until every worker exists (it is forwarded to
        # all); each worker starts with the signals blocked until its own handler is installed.
        supervisor = os.getpid()
        with stopping.held():
            for _ in range(0 if workers.stopped else count):
                pid = os.fork()
                if pid == 0:  # worker
                    stopping.child_defaults()
                    stopping.stop_with(supervisor)
                    os.close(ready_r)
                    code = 1
                    try:
                        sock = bind_socket(host, port, True) if reuse_port else shared
                        if reuse_port:
                            shared.close()

                        def signal_ready(_urls: list[str]) -> None:
                            os.write(ready_w, b".")

                        code = asyncio.run(
                            serve_worker(
                                flow_app,
                                sock,
                                grace=grace,
                                access_log=access_log,
                                on_ready=signal_ready,
                                json_logs=json_logs,
                                idle_timeout=idle_timeout,
                                last_resort=True,
                            )
                        )
                    except StartupError as e:
                        with reported.get_lock():
                            if not reported.value:
                                reported.value = 1
                                (on_worker_error or _print_worker_error)(e)
                    except BaseException:
                        log.exception("worker failed")
                    finally:
                        os._exit(code)
                workers.pids.append(pid)
        os.close(ready_w)
        return _supervise(flow_app, workers, ready_r, shared, pool, on_ready, count, host, port)
    finally:
        stopping.restore(previous)


class _Workers:
    """The supervisor's forked workers, and whether it was told to stop."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.stopped = False

    def stop(self, _signum: int, _frame: FrameType | None) -> None:
        """The supervisor's signal handler: every worker is told to stop (each drains on its own)."""
        self.stopped = True
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


async def _start_global(flow_app: FlowApp, pool: ThreadPoolExecutor) -> None:
    await flow_app.lifecycle.start(Scope.GLOBAL, asyncio.get_running_loop(), pool)


async def _stop_global(flow_app: FlowApp, pool: ThreadPoolExecutor) -> None:
    await flow_app.lifecycle.stop(Scope.GLOBAL, asyncio.get_running_loop(), pool)


def _supervise(
    flow_app: FlowApp,
    workers: _Workers,
    ready_r: int,
    shared: socket.socket,
    pool: ThreadPoolExecutor,
    on_ready: OnServing | None,
    count: int,
    host: str,
    port: int,
) -> int:
    ready = 0
    while ready < count:
        chunk = os.read(ready_r, count)
        if not chunk:  # every worker exited before reporting ready (or none was started)
            break
        ready += len(chunk)
    os.close(ready_r)
    if ready == count and on_ready is not None and not workers.stopped:
        on_ready([f"http://{host}:{port}"], count)
    shared.close()
    worst = 0 if ready == count or workers.stopped else 1
    for pid in workers.pids:
        _, status = os.waitpid(pid, 0)
        worst = max(worst, abs(os.waitstatus_to_exitcode(status)))
    asyncio.run(_stop_global(flow_app, pool))
    pool.shutdown()
    return worst


class RunOptions(TypedDict):
    """What ``Flow.run()`` passes its runtime (the ``buildflow.runtime`` entry point), which
    passes them on here."""

    host: str | None
    port: int | None
    block: bool
    workers: int | None
    stop: NotRequired[asyncio.Event | None]
    #: Seconds a connection may go without sending a whole request head (None: ``DEFAULT_IDLE_TIMEOUT``).
    idle_timeout: NotRequired[float | None]


def run_flow(
    flow: Flow,
    *,
    outputs: ResourceOutputs | None = None,
    announce: OnServing,
    dashboard: bool = False,
    **options: Unpack[RunOptions],
) -> Any:
    """``Flow.run()``: serve with the stack's ``outputs``, ``announce`` told where once it listens;
    ``block=False`` gives a coroutine serving one worker in the caller's loop instead, until
    SIGTERM or ``stop``."""
    host, port = listen_address(options["host"], options["port"], os.environ)
    idle_timeout = options.get("idle_timeout") or DEFAULT_IDLE_TIMEOUT
    if not options["block"]:
        sock = bind_socket(host, port, reuse_port=False)
        flow_app = FlowApp(flow, outputs=outputs)
        flow_app.dashboard = dashboard
        return serve_worker(
            flow_app,
            sock,
            on_ready=partial(_one_worker, announce),
            stop=options.get("stop"),
            idle_timeout=idle_timeout,
        )
    return serve(
        flow,
        host=host,
        port=port,
        workers=options["workers"],
        on_ready=announce,
        outputs=outputs,
        idle_timeout=idle_timeout,
        dashboard=dashboard,
    )
