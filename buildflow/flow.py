"""The flow: everything one module declares (services, collectors, managed primitives)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from buildflow.processors import Collector, Consumer, Method, ProcessorOptions, Route, row_type_of
from buildflow.processors import collector as _collector
from buildflow.processors import consumer as _consumer
from buildflow.service import Service

if TYPE_CHECKING:
    import asyncio

    from buildflow.pipedream import Dispatcher  # annotations only: importing it brings asyncio

T = TypeVar("T")

RUNTIME_ENTRY_POINT_GROUP = "buildflow.runtime"
#: BuildFlow's name for a flow given none; where a name is shown, the project's own is preferred.
DEFAULT_FLOW_ID = "buildflow-app"


class FlowOptions:
    """BuildFlow's flow-wide options; kept so existing modules construct unchanged."""

    def __init__(
        self,
        *,
        runtime_log_level: str = "INFO",
        gcp_service_account_info: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        schema_validation: str = "none",
        require_confirmation: bool = True,
        infra_log_level: str = "INFO",
        stack: str | None = None,
        enable_destroy_protection: bool = False,
        refresh_state: bool = True,
    ) -> None:
        self.runtime_log_level = runtime_log_level
        self.gcp_service_account_info = gcp_service_account_info
        self.aws_access_key_id = aws_access_key_id
        self.aws_secret_access_key = aws_secret_access_key
        self.aws_session_token = aws_session_token
        self.schema_validation = schema_validation
        self.require_confirmation = require_confirmation
        self.infra_log_level = infra_log_level
        self.stack = stack
        self.enable_destroy_protection = enable_destroy_protection
        self.refresh_state = refresh_state

    @classmethod
    def default(cls) -> FlowOptions:
        return cls()


class Flow:
    """Declarations only: building it performs no I/O; ``bfctl`` and the runtime read it."""

    def __init__(self, flow_id: str = DEFAULT_FLOW_ID, flow_options: FlowOptions | None = None) -> None:
        self.flow_id = flow_id
        self.options = flow_options or FlowOptions.default()
        self.services: list[Service] = []
        self.collectors: list[Collector] = []
        self.consumers: list[Consumer] = []
        self.managed_primitives: list[Any] = []
        #: Builds handler parameters named like its results (a service's own dispatcher wins for its endpoints).
        self.dispatcher: Dispatcher | None = None
        #: Replacements for dependencies, by the dependency object or its name (tests).
        self.dependency_overrides: dict[Any, Any] = {}
        #: While ``run(block=False)`` serves: the event that stops it, and the one set once stopped.
        self._serving: tuple[asyncio.Event, asyncio.Event] | None = None

    # -- services and endpoints -------------------------------------------------------------
    def service(self, base_route: str = "/", *, service_id: str | None = None, **options: Any) -> Service:
        opts = ProcessorOptions.from_kwargs(**options)
        kwargs: dict[str, Any] = {"base_route": base_route}
        if service_id is not None:
            kwargs["service_id"] = service_id
        service = Service(**kwargs, **dataclasses.asdict(opts))
        self.add_service(service)
        return service

    def add_service(self, service: Service) -> None:
        if any(s.service_id == service.service_id for s in self.services):
            raise RuntimeError(f"Service({service.service_id}) already exists in Flow object.")
        self.services.append(service)

    def use_dispatcher(self, dispatcher: Dispatcher) -> Dispatcher:
        """Let endpoints, collectors and consumers name ``dispatcher``'s results as parameters.

        The runtime builds those parameters with the handler's other dependencies, in its per-request plan.
        """
        self.dispatcher = dispatcher
        return dispatcher

    # -- collectors -------------------------------------------------------------------------
    def collector(
        self, route: Route, method: Method | str = Method.POST, sink: Any = None, **options: Any
    ) -> Callable[[T], T]:
        """Declare a collector: HTTP in, the returned rows out to ``sink``."""
        make = _collector(route, method, sink, **options)

        def wrap(target: T) -> T:
            self.add_collector(make(target))
            return target

        return wrap

    def add_collector(self, collector: Collector) -> None:
        if any(c.name == collector.name for c in self.collectors):
            raise RuntimeError(
                f"ProcessorGroup({collector.name}) already exists in Flow object."
                "Please rename your function or remove the other Processor."
            )
        _declare_rows(collector.sink_primitive, collector.original_process_fn_or_class)
        self.collectors.append(collector)

    # -- consumers --------------------------------------------------------------------------
    def consumer(self, source: Any, sink: Any = None, **options: Any) -> Callable[[T], T]:
        """Declare a consumer: each message of ``source`` through the handler, rows out to ``sink``."""
        make = _consumer(source, sink, **options)

        def wrap(target: T) -> T:
            self.add_consumer(make(target))
            return target

        return wrap

    def add_consumer(self, consumer: Consumer) -> None:
        if any(c.name == consumer.name for c in self.consumers):
            raise RuntimeError(
                f"ProcessorGroup({consumer.name}) already exists in Flow object."
                "Please rename your function or remove the other Processor."
            )
        _declare_rows(consumer.sink_primitive, consumer.original_process_fn_or_class)
        self.consumers.append(consumer)

    # -- infrastructure ---------------------------------------------------------------------
    def manage(self, *primitives: Any) -> None:
        """Declare primitives whose infrastructure ``bfctl apply`` creates, as BuildFlow did.

        Only these are created on a cloud (with their parents already managed): a parent not
        managed (the dataset of a managed table, the topic of a managed subscription) and every
        source or sink a processor uses without managing it exist already, and are used as they are.
        """
        from buildflow.io.primitive import Primitive

        for primitive in primitives:
            if not isinstance(primitive, Primitive):
                raise ValueError(f"manage() takes primitives from buildflow.io, got {primitive!r}")
            primitive.enable_managed()
            for parent in [*_managed_parents(primitive), primitive]:
                if all(p is not parent for p in self.managed_primitives):
                    self.managed_primitives.append(parent)

    # -- tests ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def overrides(self, mapping: Mapping[Any, Any]) -> Iterator[Flow]:
        """Replace dependencies for the servers started inside the ``with`` block."""
        saved = dict(self.dependency_overrides)
        self.dependency_overrides.update(mapping)
        try:
            yield self
        finally:
            self.dependency_overrides = saved

    # -- serving ----------------------------------------------------------------------------
    def run(
        self,
        *,
        serve_host: str | None = None,
        serve_port: int | None = None,
        block: bool = True,
        workers: int | None = None,
        idle_timeout: float | None = None,
        **ignored: Any,
    ) -> Any:
        """Serve the flow, as ``bfctl serve`` does; ``block=False`` returns a coroutine.

        As BuildFlow's did, it serves against what was applied before: the local target's
        default stack of the project in the working directory (``bfctl apply``), or the
        outputs a deployed container is given. Like ``bfctl serve``, the port defaults to
        ``$PORT`` when set (else 8000) and the host to 0.0.0.0 on Cloud Run (``K_SERVICE``
        set), else 127.0.0.1. ``idle_timeout``: seconds a connection may go without sending a
        whole request head (``bfctl serve --idle-timeout``).

        The server is found through the ``buildflow.runtime`` entry point (bfctl's), so this
        package stays free of server code.
        """
        from importlib.metadata import entry_points

        found = list(entry_points(group=RUNTIME_ENTRY_POINT_GROUP))
        if not found:
            raise RuntimeError("No BuildFlow runtime is installed: pip install bfctl")
        run_flow = found[0].load()
        if block:
            return run_flow(
                self, host=serve_host, port=serve_port, block=True, workers=workers, idle_timeout=idle_timeout
            )
        import asyncio

        stop = asyncio.Event()
        served = run_flow(
            self, host=serve_host, port=serve_port, block=False, workers=workers, stop=stop, idle_timeout=idle_timeout
        )
        return self._served_until_drained(served, stop)

    async def _served_until_drained(self, served: Coroutine[Any, Any, Any], stop: asyncio.Event) -> Any:
        """What ``run(block=False)`` returns: the server, which ``_drain()`` stops while it runs."""
        import asyncio

        stopped = asyncio.Event()
        self._serving = (stop, stopped)
        try:
            return await served
        finally:
            self._serving = None
            stopped.set()

    async def _drain(self) -> bool:
        """Stop what ``run(block=False)`` serves as SIGTERM would (in-flight requests finish, the
        collectors' rows are written) and return once stopped: BuildFlow's tests ended a flow so."""
        if self._serving is not None:
            stop, stopped = self._serving
            stop.set()
            await stopped.wait()
        return True

    def __repr__(self) -> str:
        endpoints = sum(len(s.endpoints) for s in self.services)
        return (
            f"Flow({self.flow_id!r}, services={len(self.services)}, endpoints={endpoints}, "
            f"collectors={len(self.collectors)}, consumers={len(self.consumers)}, "
            f"managed={len(self.managed_primitives)})"
        )


def _declare_rows(sink: Any, handler: Callable[..., Any]) -> None:
    """Give a table sink the columns of its handler's rows (it is managed or not: rows are converted for it)."""
    declare = getattr(sink, "declare_row_type", None)
    if declare is not None:
        declare(row_type_of(handler, sink))


def _managed_parents(primitive: Any) -> list[Any]:
    """The parents of ``primitive`` marked managed, and theirs (BuildFlow's rule for what ``manage`` takes along)."""
    found = []
    for parent in primitive.parents():
        if parent._managed:
            found += [*_managed_parents(parent), parent]
    return found
