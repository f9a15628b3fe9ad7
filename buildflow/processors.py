"""Declarations of what a flow serves: endpoints and collectors, with their options."""

from __future__ import annotations

import dataclasses
import enum
import typing
from collections.abc import Callable
from typing import Any, Self

from buildflow.types.fields import Shape, parse_type

Route = str


class Method(enum.Enum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    WEBSOCKET = "WEBSOCKET"

    @classmethod
    def parse(cls, method: Method | str) -> Method:
        if isinstance(method, Method):
            return method
        try:
            return cls(str(method).upper())
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise ValueError(f"Unknown HTTP method {method!r}; use one of {valid}") from None


class _DefaultReplicas(int):
    """BuildFlow's default ``max_replicas``: the number itself, yet told apart from the same
    number given, so that a deploy target may use its own default instead (Cloud Run refuses more
    instances than a project's CPU quota allows, and new projects' quotas are far below 1000)."""


#: ``max_replicas`` when a flow does not set it.
DEFAULT_MAX_REPLICAS: int = _DefaultReplicas(1000)


def max_replicas_given(value: int) -> bool:
    """Whether a ``max_replicas`` was set by the flow rather than left at BuildFlow's default."""
    return not isinstance(value, _DefaultReplicas)


@dataclasses.dataclass
class ProcessorOptions:
    """Scaling options BuildFlow accepted. Only ``num_replicas`` means something here: it
    is the default worker-process count of ``bfctl serve``; the rest are kept for
    compatibility (``bfctl serve --workers`` decides)."""

    num_cpus: float = 1.0
    num_replicas: int = 1
    min_replicas: int = 1
    max_replicas: int = DEFAULT_MAX_REPLICAS
    enable_autoscaler: bool = True
    max_concurrent_queries: int = 100
    target_num_ongoing_requests_per_replica: int = 1
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.num_cpus <= 0:
            raise ValueError(f"num_cpus must be positive, got {self.num_cpus}")
        if self.min_replicas < 0 or self.max_replicas < 0:
            raise ValueError("min_replicas and max_replicas must be >= 0")
        if self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        if self.num_replicas < self.min_replicas:
            raise ValueError("num_replicas must be >= min_replicas")

    @classmethod
    def from_kwargs(cls, autoscale_options: Any = None, **kwargs: Any) -> Self:
        """Flat keywords (0.3.2) and an ``autoscale_options`` object (0.3.0) both work."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(f"Unknown option(s): {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        if autoscale_options is not None:
            for name in names:
                if name not in kwargs and hasattr(autoscale_options, name):
                    kwargs[name] = getattr(autoscale_options, name)
        return cls(**kwargs)


class _Declared:
    """What endpoints, collectors and consumers share: each is named after its handler and, as
    BuildFlow's were, callable as the handler itself (tests call them directly)."""

    original_process_fn_or_class: Callable[..., Any]

    @property
    def name(self) -> str:
        handler = self.original_process_fn_or_class
        # an object with __call__ is named by its class, as a class processor is: logs and metrics
        # need a name that stays the same between runs, never an address
        return getattr(handler, "__name__", None) or type(handler).__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.original_process_fn_or_class(*args, **kwargs)


@dataclasses.dataclass
class Endpoint(_Declared):
    route: Route
    method: Method
    original_process_fn_or_class: Callable[..., Any]
    options: ProcessorOptions = dataclasses.field(default_factory=ProcessorOptions)


#: Collector keywords that tune how rows are grouped into writes (see the runtime's batching).
BATCH_OPTIONS = ("batch_size", "max_wait", "max_queued_rows", "write_timeout")


@dataclasses.dataclass
class Collector(_Declared):
    route: Route
    method: Method
    sink_primitive: Any | None
    processor_options: ProcessorOptions
    original_process_fn_or_class: Callable[..., Any]
    batch_options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ConsumerOptions(ProcessorOptions):
    """BuildFlow's consumer options. ``num_concurrency`` is the number of pull loops each worker
    of ``bfctl serve`` runs; the autoscaler's settings are kept for compatibility (the platform
    scales: Cloud Run on gcp)."""

    num_concurrency: int = 1
    autoscale_frequency_secs: int = 60
    consumer_backlog_burn_threshold: int = 60
    consumer_cpu_percent_target: int = 25

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.consumer_cpu_percent_target <= 100:
            raise ValueError(f"consumer_cpu_percent_target must be 0 to 100, got {self.consumer_cpu_percent_target}")
        if self.num_concurrency < 1:
            raise ValueError(f"num_concurrency must be at least 1, got {self.num_concurrency}")


@dataclasses.dataclass
class Consumer(_Declared):
    """A stream in, rows out: each message of ``source_primitive`` goes through the handler, and
    what it returns (one item, a list, or None) goes to ``sink_primitive``."""

    source_primitive: Any
    sink_primitive: Any | None
    processor_options: ConsumerOptions
    original_process_fn_or_class: Callable[..., Any]
    batch_options: dict[str, Any] = dataclasses.field(default_factory=dict)


def consumer(source: Any, sink: Any = None, **options: Any) -> Callable[[Any], Consumer]:
    """Module-level decorator for ``Flow.add_consumer`` (BuildFlow's ``buildflow.consumer``).

    Besides BuildFlow's options, the sink's batching options as for collectors.
    """
    from buildflow.io.primitive import Primitive

    for role, primitive in (("source", source), ("sink", sink)):
        if primitive is not None and not isinstance(primitive, Primitive):
            raise ValueError(f"a consumer's {role} must be a primitive from buildflow.io, got {primitive!r}")
    if source is None:
        raise ValueError("a consumer needs a source: a subscription, a file change stream or a Pulse")
    batching = {k: options.pop(k) for k in BATCH_OPTIONS if k in options}
    parsed = ConsumerOptions.from_kwargs(**options)

    def wrap(target: Any) -> Consumer:
        if not callable(target):
            raise TypeError(f"@consumer needs a function or a class, got {target!r}")
        return Consumer(source, sink, parsed, target, batching)

    return wrap


def endpoint(route: Route, method: Method | str = Method.GET, **options: Any) -> Callable[[Any], Endpoint]:
    """Module-level decorator for ``Service.add_endpoint``."""

    def wrap(target: Any) -> Endpoint:
        return Endpoint(route, Method.parse(method), target, ProcessorOptions.from_kwargs(**options))

    return wrap


def collector(
    route: Route, method: Method | str = Method.POST, sink: Any = None, **options: Any
) -> Callable[[Any], Collector]:
    """Module-level decorator for ``Flow.add_collector``.

    Besides BuildFlow's options: ``batch_size`` (most rows per write), ``max_wait`` (seconds
    to wait for more rows before a write, default 0), ``max_queued_rows`` (beyond it: 503)
    and ``write_timeout`` (seconds).
    """
    parsed = Method.parse(method)
    if parsed is Method.WEBSOCKET:
        raise NotImplementedError("Websocket collectors are not yet supported")

    batching = {k: options.pop(k) for k in BATCH_OPTIONS if k in options}

    def wrap(target: Any) -> Collector:
        return Collector(route, parsed, sink, ProcessorOptions.from_kwargs(**options), target, batching)

    return wrap


def join_route(base: str, route: str) -> str:
    """``/base`` + ``/x`` → ``/base/x``; keeps exactly one slash between parts."""
    base = "/" + base.strip("/")
    route = route.strip()
    if not route or route == "/":
        return base
    return (base.rstrip("/") + "/" + route.lstrip("/")) if base != "/" else "/" + route.lstrip("/")


def row_type_of(fn: Callable[..., Any], sink: Any) -> Any:
    """The type of one row: the sink's declared schema, else the handler's return annotation
    (``T``, ``list[T]`` or ``Optional[...]`` of those)."""
    declared = getattr(sink, "schema", None)
    if declared is not None:
        return declared
    if isinstance(fn, type):  # class-based: its process() returns the rows
        fn = getattr(fn, "process", fn)
    try:
        returned = typing.get_type_hints(fn).get("return")
    except Exception:
        return None
    if returned is None:
        return None
    node = parse_type(returned)
    for _ in range(3):  # Optional[list[T]] → T; the first option of a union
        if node.shape not in (Shape.SEQUENCE, Shape.UNION) or not node.args:
            break
        node = node.args[0]
    return node.type if node.is_record else node.annotation
