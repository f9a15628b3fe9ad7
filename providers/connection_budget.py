"""How many connections a deployed flow may open on each Cloud SQL instance, and the pools that fit.

Every worker of every instance of the service keeps its own pool per engine (a ``SessionDep``'s,
or one made at import), and each sink writing to a table of the instance holds up to
``CloudSQLTable.writer_connections`` (its COPYs in flight at once). Cloud SQL refuses
connections past the instance's ``max_connections`` ("remaining connection slots are
reserved"), which it sets from the instance's memory unless the flow sets the flag. So the plan
works out, per instance::

    max instances x workers x (pools + writers)  <=  max_connections - RESERVED

and sizes the pools the flow left unsized to fit; when even a pool of one connection does not fit,
it lowers the service's max instances instead. Pure arithmetic: the plan, apply and ``doctor`` call it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bfctl.providers.errors import ProviderError
from buildflow.dependencies.sqlalchemy import POOL_TIMEOUT, EnginePool

#: Cloud SQL for PostgreSQL's default ``max_connections`` by the instance's memory (GiB, at least):
#: the table "Cloud SQL for PostgreSQL connection limits" of
#: https://cloud.google.com/sql/docs/postgres/quotas (db-f1-micro, 0.6 GiB: 25; db-g1-small,
#: 1.7 GiB: 50; 3.75 up to 6 GiB: 100; ... 120 GiB and above: 1,000).
DEFAULT_MAX_CONNECTIONS: tuple[tuple[float, int], ...] = (
    (120, 1000),
    (60, 800),
    (30, 600),
    (15, 500),
    (7.5, 400),
    (6, 200),
    (3.75, 100),
    (1.7, 50),
    (0, 25),
)
#: What is assumed of a tier whose memory bfctl does not know: the least Cloud SQL gives.
UNKNOWN_TIER_CONNECTIONS = 25
#: The values Cloud SQL takes for the ``max_connections`` flag.
FLAG_RANGE = (14, 262143)
#: Connections kept out of the budget: PostgreSQL's ``superuser_reserved_connections`` (3), which
#: Cloud SQL's own maintenance and monitoring use, and three for what runs beside the service
#: (bfctl's migrations during an apply, an operator's psql).
RESERVED = 6
#: SQLAlchemy's own queue pool: ``pool_size`` 5 and ``max_overflow`` 10.
SQLALCHEMY_POOL = (5, 10)

_SHARED_CORE_GIB = {"db-f1-micro": 0.6, "db-g1-small": 1.7}
_CUSTOM = re.compile(r"db-custom-\d+-(\d+)")
_N1 = re.compile(r"db-n1-(standard|highmem)-(\d+)")
_N1_GIB_PER_CPU = {"standard": 3.75, "highmem": 6.5}
#: Enterprise Plus's performance-optimized machines have 8 GiB per vCPU.
_PERF_OPTIMIZED = re.compile(r"db-perf-optimized-N-(\d+)")


class ConnectionBudgetError(ProviderError):
    """The flow's pools cannot fit in an instance's connections; the message says what to change."""


def max_connections_flag(instance: Any) -> int | None:
    """The ``max_connections`` database flag the flow set on ``instance`` (a CloudSQLInstance), checked."""
    for flag in instance.settings.database_flags or ():
        if isinstance(flag, Mapping) and flag.get("name") == "max_connections":
            value = flag.get("value")
            try:
                number = int(str(value))
            except ValueError:
                number = 0
            if not FLAG_RANGE[0] <= number <= FLAG_RANGE[1]:
                raise ConnectionBudgetError(
                    f"{instance.primitive_id()}: the max_connections flag must be a whole number from "
                    f"{FLAG_RANGE[0]} to {FLAG_RANGE[1]} (Cloud SQL's range), got {value!r}"
                )
            return number
    return None


def tier_memory_gib(tier: str) -> float | None:
    """The memory of a Cloud SQL machine tier, when its name says it."""
    if tier in _SHARED_CORE_GIB:
        return _SHARED_CORE_GIB[tier]
    if custom := _CUSTOM.fullmatch(tier):
        return int(custom.group(1)) / 1024
    if n1 := _N1.fullmatch(tier):
        return _N1_GIB_PER_CPU[n1.group(1)] * int(n1.group(2))
    if perf := _PERF_OPTIMIZED.fullmatch(tier):
        return 8.0 * int(perf.group(1))
    return None


def max_connections(instance: Any) -> tuple[int, str]:
    """The instance's ``max_connections`` and where that number comes from (said in the plan)."""
    flag = max_connections_flag(instance)
    if flag is not None:
        return flag, "its max_connections flag"
    tier = instance.settings.tier
    memory = tier_memory_gib(tier)
    if memory is None:
        return UNKNOWN_TIER_CONNECTIONS, (
            f"assumed for tier {tier}, whose memory bfctl does not know; set the max_connections flag to say"
        )
    limit = next(connections for least, connections in DEFAULT_MAX_CONNECTIONS if memory >= least)
    return limit, f"Cloud SQL's default for {tier}, {memory:g} GiB"


@dataclasses.dataclass(frozen=True)
class ConnectionBudget:
    """What the plan chose: the service's max instances, and pool sizes by database id."""

    max_instances: int
    #: ``(pool_size, max_overflow)`` of every worker's pools the flow left unsized, by database id.
    pools: Mapping[str, tuple[int, int]]
    #: What was chosen and why, one line each, for the plan.
    notes: tuple[str, ...] = ()


@dataclasses.dataclass
class _Instance:
    """One Cloud SQL instance's share of the flow: its engines and writers in each worker."""

    instance: Any
    sized: list[EnginePool] = dataclasses.field(default_factory=list)
    fixed: int = 0
    writers: int = 0

    @property
    def name(self) -> str:
        return f"the Cloud SQL instance {self.instance.instance_name}"

    def least_per_worker(self) -> int:
        """Connections one worker needs with every pool bfctl sizes at one connection."""
        return self.fixed + self.writers + len(self.sized)

    def parts(self) -> str:
        said = []
        if self.sized:
            said.append(f"{len(self.sized)} pool(s) of at least 1")
        if self.fixed:
            said.append(f"{self.fixed} in pools the flow sized")
        if self.writers:
            said.append(f"{self.writers} for sink writers")
        return ", ".join(said)


def _flow_pool(pool: EnginePool) -> int:
    """Connections a pool the flow sized may open: its sizes, SQLAlchemy's for the one left out."""
    size = SQLALCHEMY_POOL[0] if pool.pool_size is None else pool.pool_size
    overflow = SQLALCHEMY_POOL[1] if pool.max_overflow is None else pool.max_overflow
    return size + max(overflow, 0)


def _by_instance(engines: Iterable[EnginePool], writer_tables: Iterable[Any]) -> dict[str, _Instance]:
    found: dict[str, _Instance] = {}

    def of(instance: Any) -> _Instance:
        return found.setdefault(instance.primitive_id(), _Instance(instance))

    for pool in engines:
        share = of(pool.database.instance)
        if pool.sized_by_flow:
            share.fixed += _flow_pool(pool)
        else:
            share.sized.append(pool)
    for table in writer_tables:
        of(table.database.instance).writers += table.writer_connections
    return found


def connection_budget(
    engines: Sequence[EnginePool],
    writer_tables: Sequence[Any] = (),
    *,
    max_instances: int,
    min_instances: int,
    workers: int,
) -> ConnectionBudget:
    """The pools and max instances that keep the flow within each instance's ``max_connections``.

    ``engines`` are the pools each worker keeps (one per session dependency or engine made at
    import), ``writer_tables`` the Cloud SQL tables its sinks write to (a connection each per
    worker). A pool is given as many connections as its share allows, up to SQLAlchemy's own
    5 + 10; when the share is under one connection, max instances is lowered until it is one.
    """
    shares = _by_instance(engines, writer_tables)
    chosen, notes = max_instances, []
    for share in shares.values():
        limit, source = max_connections(share.instance)
        usable = limit - RESERVED
        least = share.least_per_worker()
        fitting = usable // (workers * least) if least else max_instances
        if fitting < max(min_instances, 1):
            raise ConnectionBudgetError(
                f"{share.name} allows {limit} connections ({source}), {RESERVED} of them kept for Cloud SQL and "
                f"migrations; {max(min_instances, 1)} instance(s) of {workers} worker(s) need at least "
                f"{max(min_instances, 1) * workers * least} ({share.parts()} per worker). Set a larger "
                "max_connections flag or tier, fewer workers (workers in [tool.buildflow.gcp]), "
                "smaller pools, or fewer min_replicas"
            )
        if fitting < chosen:
            notes.append(
                f"the service scales to at most {fitting} instances, not {chosen}: {share.name} allows {limit} "
                f"connections ({source}), {RESERVED} of them kept for Cloud SQL and migrations, and each of an "
                f"instance's {workers} worker(s) needs at least {least} ({share.parts()}). Raise the "
                "max_connections flag or the tier to scale further."
            )
            chosen = fitting
    pools: dict[str, tuple[int, int]] = {}
    for share in shares.values():
        if not share.sized:
            continue
        limit, source = max_connections(share.instance)
        spare = (limit - RESERVED) // (chosen * workers) - share.fixed - share.writers
        total = min(spare // len(share.sized), sum(SQLALCHEMY_POOL))
        size = min(total, SQLALCHEMY_POOL[0])
        for pool in share.sized:
            pools[pool.database.primitive_id()] = (size, total - size)
        if total < sum(SQLALCHEMY_POOL):
            notes.append(
                f"each worker's pool on {share.name} keeps {size} connection(s) and opens at most {total - size} "
                f"more (SQLAlchemy's default: 5 and 10), so that {chosen} instance(s) x {workers} worker(s) fit in "
                f"the {limit} connections it allows ({source}), {RESERVED} of them kept for Cloud SQL and "
                f"migrations. A request that waits {POOL_TIMEOUT:g}s for a connection is answered 503 with "
                "Retry-After."
            )
    return ConnectionBudget(chosen, pools, tuple(notes))
