"""A service: a group of endpoints under one base route."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from buildflow.processors import DEFAULT_MAX_REPLICAS, Endpoint, Method, ProcessorOptions, Route

if TYPE_CHECKING:
    from buildflow.pipedream import Dispatcher  # annotations only: importing it brings asyncio

T = TypeVar("T")


class GeneratedServiceId(str):
    """The ``service_id`` of a service declared without one: where services are named, its base
    route serves better than these random letters."""

    __slots__ = ()


def _service_id() -> str:
    return GeneratedServiceId(uuid.uuid4().hex[:12])


@dataclasses.dataclass
class Service:
    base_route: str = "/"
    num_cpus: float = 1.0
    max_concurrent_queries: int = 100
    enable_autoscaler: bool = True
    num_replicas: int = 1
    min_replicas: int = 1
    max_replicas: int = DEFAULT_MAX_REPLICAS
    target_num_ongoing_requests_per_replica: int = 1
    log_level: str = "INFO"
    service_id: str = dataclasses.field(default_factory=_service_id)
    #: ``min_replicas`` as BuildFlow's ``Service`` spelled it (a keyword only: read ``min_replicas``).
    min_replics: dataclasses.InitVar[int | None] = None
    endpoints: list[Endpoint] = dataclasses.field(default_factory=list, init=False)
    middleware: list[Any] = dataclasses.field(default_factory=list, init=False)
    #: Builds this service's endpoints' parameters named like its results (else the flow's dispatcher).
    dispatcher: Dispatcher | None = dataclasses.field(default=None, init=False)

    def __post_init__(self, min_replics: int | None) -> None:
        if not self.base_route.startswith("/"):
            raise ValueError(f"base_route must start with '/', got {self.base_route!r}")
        if min_replics is not None:
            self.min_replicas = min_replics
        # the service's own fields carry the options (BuildFlow's constructor): validate them
        self.options = ProcessorOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ProcessorOptions)})

    def endpoint(self, route: Route = "/", method: Method | str = Method.GET, **options: Any) -> Callable[[T], T]:
        """Declare a function or class (``setup()`` / ``process()``) as an endpoint.

        Returns the decorated object unchanged, so it stays callable in tests.
        """
        parsed = Method.parse(method)
        opts = ProcessorOptions.from_kwargs(**options)

        def wrap(target: T) -> T:
            if not callable(target):
                raise TypeError(f"@endpoint needs a function or a class, got {target!r}")
            self.add_endpoint(Endpoint(route, parsed, target, opts))
            return target

        return wrap

    def use_dispatcher(self, dispatcher: Dispatcher) -> Dispatcher:
        """Let this service's endpoints name ``dispatcher``'s results as parameters (instead of the flow's)."""
        self.dispatcher = dispatcher
        return dispatcher

    def add_middleware(self, middleware_type: type, **options: Any) -> None:
        """Apply ``middleware_type`` (from ``buildflow.middleware``, or Starlette's of the same
        name) to this service's routes."""
        from buildflow.middleware import declare  # its exceptions and secrets: only for flows with middleware

        self.middleware.append(declare(middleware_type, options))

    def add_endpoint(self, endpoint: Endpoint) -> None:
        if not endpoint.route.startswith("/"):
            raise ValueError(f"Endpoint route must start with '/', got {endpoint.route!r}")
        self.endpoints.append(endpoint)
