"""SQLAlchemy sessions on a managed Cloud SQL database, as BuildFlow's ``SessionDep``.

The engine and its pool are built once per worker (REPLICA); each request gets its own
session (PROCESS), closed after the handler returns, which rolls back anything uncommitted.
BuildFlow's ``engine(db, db_user, db_password)`` works outside dependencies too, as its
templates used it at import (``Base.metadata.create_all(...)``): it connects at first use.
On the local target the engine points at the embedded PostgreSQL that ``bfctl apply`` made.
On the gcp target it connects through the Cloud SQL Python Connector (TLS to the instance,
no IP allow-list or proxy to run): ``pg8000`` for sync engines, ``asyncpg`` for asyncio ones.
No postponed annotations: the dependency classes below are built inside functions and their
annotations name local classes.
"""

import asyncio
import dataclasses
import json
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, overload

from buildflow.dependencies.flow_dependencies import (
    FlowCredentials,
    NotApplied,
    ResourceOutputs,
    imported_to_read,
    missed,
    stack_outputs,
    stack_target,
)
from buildflow.dependencies.scopes import Scope, dependency
from buildflow.deployed import POOLS_ENV
from buildflow.secrets import Password, reveal

#: gcp-target connection options, taken out of the builders' engine keyword arguments.
_CONNECTOR_OPTIONS = ("ip_type", "enable_iam_auth")
_IP_TYPES = ("public", "private", "psc")

#: gcloud's variable overriding the Cloud SQL Admin API's endpoint, honoured by the connector here.
SQLADMIN_ENDPOINT_ENV = "CLOUDSDK_API_ENDPOINT_OVERRIDES_SQLADMIN"
#: Set in every Cloud Run instance (the service's name).
CLOUD_RUN_ENV = "K_SERVICE"

_USERS_ATTR = "_buildflow_session_users"
_IAM_ATTR = "_buildflow_iam_auth"
_POOLS_ATTR = "_buildflow_engine_pools"

#: Seconds a request waits for a pooled connection before it gives up (SQLAlchemy's default is
#: 30): a full pool answers 503 with Retry-After soon rather than holding the request.
POOL_TIMEOUT = 5.0


@dataclasses.dataclass(frozen=True)
class EnginePool:
    """The pool every worker keeps on ``database`` for one engine, as the connection budget counts
    it: the sizes the flow gave (``pool_size``, ``max_overflow``), or None where the budget sizes it."""

    database: Any
    pool_size: int | None = None
    max_overflow: int | None = None

    @property
    def sized_by_flow(self) -> bool:
        return self.pool_size is not None or self.max_overflow is not None


def budgeted_pools() -> dict[str, tuple[int, int]]:
    """``(pool_size, max_overflow)`` by database id, as the deployment set them (``$BUILDFLOW_DB_POOLS``)."""
    given = os.environ.get(POOLS_ENV)
    if not given:
        return {}
    try:
        return {str(k): (int(v[0]), int(v[1])) for k, v in json.loads(given).items()}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise ValueError(
            f"{POOLS_ENV} is not the JSON the gcp target sets ({{database id: [pool_size, max_overflow]}}); unset it"
        ) from None


def _sized_pool(db_primitive: Any, kwargs: dict[str, Any]) -> None:
    """Give a queue pool the wait of :data:`POOL_TIMEOUT` and, unless the flow sized it, the sizes the
    deployment's connection budget chose: every worker of every instance keeps such a pool, and
    together they must fit in the instance's ``max_connections``. Other pool classes are left as given."""
    if "poolclass" in kwargs or "pool" in kwargs:
        return
    kwargs.setdefault("pool_timeout", POOL_TIMEOUT)
    if "pool_size" in kwargs or "max_overflow" in kwargs:
        return
    sized = budgeted_pools().get(db_primitive.primitive_id())
    if sized is not None:
        kwargs["pool_size"], kwargs["max_overflow"] = sized


def session_users(db_primitive: Any) -> list[tuple[str, Password]]:
    """(user, password) pairs the flow's session dependencies log in with."""
    return list(getattr(db_primitive, _USERS_ATTR, []))


def _named(session_dep: type, maker: type, db_primitive: Any) -> type:
    """Names that say which database in errors and logs; the maker (REPLICA) stays reachable
    as ``SessionDep.SessionMaker`` for dependencies that need the engine itself."""
    for cls in (session_dep, maker):
        cls.__qualname__ = cls.__name__ = f"{cls.__name__}[{db_primitive.database_name}]"
    session_dep.SessionMaker = maker  # type: ignore[attr-defined]  # an attribute given to the built class
    maker.db_primitive = db_primitive  # type: ignore[attr-defined]  # what bfctl reads the used database from
    return session_dep


def engine_pools(db_primitive: Any) -> list[EnginePool]:
    """The pools each worker keeps on the database: one per session dependency built for it and
    per engine made with BuildFlow's form (at import), as the connection budget counts them."""
    return list(getattr(db_primitive, _POOLS_ATTR, []))


def _declare_pool(db_primitive: Any, options: Mapping[str, Any]) -> None:
    pools = getattr(db_primitive, _POOLS_ATTR, None)
    if pools is None:
        pools = []
        object.__setattr__(db_primitive, _POOLS_ATTR, pools)
    pools.append(EnginePool(db_primitive, options.get("pool_size"), options.get("max_overflow")))


def iam_auth(db_primitive: Any) -> bool:
    """Whether a session dependency of the flow logs in to ``db_primitive`` as an IAM principal
    (``enable_iam_auth=True``): on gcp the stack then makes the service's account a user of it."""
    return bool(getattr(db_primitive, _IAM_ATTR, False))


def _declare_login(db_primitive: Any, user: str, password: Password, iam: bool) -> None:
    """Record how the flow logs in to ``db_primitive``, for bfctl to make what that needs."""
    if iam:
        object.__setattr__(db_primitive, _IAM_ATTR, True)
    else:
        _declare_user(db_primitive, user, password)


def _declare_user(db_primitive: Any, user: str, password: Password) -> None:
    users = getattr(db_primitive, _USERS_ATTR, None)
    if users is None:
        users = []
        object.__setattr__(db_primitive, _USERS_ATTR, users)
    if (user, password) not in users:
        users.append((user, password))


@dependency(Scope.REPLICA)
class CloudSQLConnectors:
    """The worker's Cloud SQL connectors, shared by every session dependency in it.

    Made on first use (so the local target never imports the connector) and closed when the
    worker stops. Sync engines share one ``Connector`` running on its own thread; asyncio
    engines share one made on the worker's event loop (``create_async_connector``). Both use
    ``FlowCredentials.gcp_credentials``, or Application Default Credentials when it is None.
    """

    def __init__(self, credentials: FlowCredentials) -> None:
        self.credentials = credentials.gcp_credentials
        self._sync: Any = None
        self._async: Any = None
        self._sync_lock = threading.Lock()
        self._async_lock = asyncio.Lock()

    def connector_options(self) -> dict[str, Any]:
        """Keyword arguments of every ``Connector`` made here.

        The Admin API endpoint follows gcloud's override variable, as the image publisher's
        endpoints do (a private endpoint, or a stand-in of Google's side). On Cloud Run the
        certificate is refreshed when a connection needs it: Cloud Run throttles the CPU between
        requests, which starves the connector's default background refresh, and the first
        connection after an idle hour would fail on an expired certificate.
        """
        options: dict[str, Any] = {"credentials": self.credentials} if self.credentials is not None else {}
        endpoint = os.environ.get(SQLADMIN_ENDPOINT_ENV)
        if endpoint:
            options["sqladmin_api_endpoint"] = endpoint.rstrip("/")
        if os.environ.get(CLOUD_RUN_ENV):
            options["refresh_strategy"] = "lazy"
        return options

    def sync(self) -> Any:
        """The worker's connector for sync drivers (called from pool threads)."""
        with self._sync_lock:
            if self._sync is None:
                from google.cloud.sql.connector import Connector

                self._sync = Connector(**self.connector_options())
            return self._sync

    async def for_asyncio(self) -> Any:
        """The worker's connector for asyncio drivers, bound to the running loop."""
        async with self._async_lock:
            if self._async is None:
                from google.cloud.sql.connector import create_async_connector

                self._async = await create_async_connector(**self.connector_options())
            return self._async

    async def teardown(self) -> None:
        if self._async is not None:
            await self._async.close_async()
        if self._sync is not None:
            await asyncio.to_thread(self._sync.close)  # joins the connector's thread


def _connector_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the gcp-target options out of the engine keyword arguments, checked."""
    options = {k: kwargs.pop(k) for k in _CONNECTOR_OPTIONS if k in kwargs}
    ip_type = options.get("ip_type", "public")
    if not isinstance(ip_type, str) or ip_type.lower() not in _IP_TYPES:
        raise ValueError(f"ip_type must be one of {', '.join(_IP_TYPES)}, got {ip_type!r}")
    options["ip_type"] = ip_type.lower()
    options["enable_iam_auth"] = bool(options.get("enable_iam_auth", False))
    return options


class _Database:
    """Where an engine's connections go: ``db_primitive`` as applied, read from ``outputs`` when
    they are given (inside the runtime), else from the served stack at the first connection
    (an engine made when the flow module is imported, before anything is served).

    On gcp a database the flow does not manage is expected to exist: its connection name is the
    instance's (``project:region:instance``), as BuildFlow's engine connected.
    """

    def __init__(
        self,
        db_primitive: Any,
        user: str,
        password: Password,
        *,
        outputs: ResourceOutputs | None = None,
        connectors: CloudSQLConnectors | None = None,
        credentials: Any = None,
    ) -> None:
        self.primitive, self.user, self.password = db_primitive, user, password
        self._given, self._connectors, self._credentials = outputs, connectors, credentials
        self.found_at_first_use = outputs is None
        self.target = stack_target() if outputs is None else outputs.target
        self.dry = outputs is None and imported_to_read()
        if self.target == "gcp" and outputs is not None and connectors is None:
            raise TypeError("on the gcp target an engine needs `connectors=` (the worker's CloudSQLConnectors)")

    def applied(self) -> Mapping[str, Any]:
        """The database's outputs (local target: host, port, database)."""
        pid = self.primitive.primitive_id()
        if self._given is not None:
            return self._given[pid]
        try:
            return stack_outputs()[pid]
        except NotApplied:
            raise missed(f"the Cloud SQL database {pid!r}") from None

    def connect_params(self, database_key: str) -> Callable[..., None]:
        """A ``do_connect`` listener giving the driver the applied host, port and credentials."""

        def fill(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
            out = self.applied()
            cparams.update(host=out["host"], port=int(out["port"]), user=self.user, password=reveal(self.password))
            cparams[database_key] = out["database"]

        return fill

    def cloud_sql(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The instance connection name and the connector's driver arguments (gcp target)."""
        outputs = self._given if self._given is not None else stack_outputs()
        out = outputs.get(self.primitive.primitive_id())
        if out is None:  # not managed: it exists already
            name = self.primitive.instance.connection_name()
            database = self.primitive.database_name
        else:
            name, database = out["connection_name"], out["database"]
        args: dict[str, Any] = {"user": self.user, "db": database, **options}
        if not options["enable_iam_auth"]:
            args["password"] = reveal(self.password)
        elif out is not None and out.get("iam_user") and os.environ.get(CLOUD_RUN_ENV):
            args["user"] = out["iam_user"]  # the token is the service account's: log in as its user
        return name, args

    def connectors(self) -> CloudSQLConnectors:
        """The worker's connectors, or this engine's own (made from its ``credentials``)."""
        if self._connectors is None:
            self._connectors = CloudSQLConnectors(FlowCredentials(gcp_credentials=self._credentials))
        return self._connectors

    def forget_connectors(self) -> None:
        """Drop the connectors this engine made itself (in a forked worker: the next use makes
        new ones); the runtime's, given to it, are the worker's already."""
        if self.found_at_first_use:
            self._connectors = None

    def connect(self, options: dict[str, Any]) -> Any:
        """A pg8000 connection through the Cloud SQL connector (from a pool thread)."""
        name, args = self.cloud_sql(options)
        return self.connectors().sync().connect(name, "pg8000", **args)

    async def connect_async(self, options: dict[str, Any]) -> Any:
        """An asyncpg connection through the Cloud SQL connector, on the running loop."""
        name, args = self.cloud_sql(options)
        return await (await self.connectors().for_asyncio()).connect_async(name, "asyncpg", **args)


#: The databases BuildFlow's form of the engine builders was called for (at import, mostly).
_ENGINE_DATABASES: list[Any] = []


def engine_databases() -> list[Any]:
    """The databases engines were made for outside the dependencies, as
    ``Base.metadata.create_all(engine(db, user, password))`` at import: the flow uses them."""
    return list(_ENGINE_DATABASES)


def _given(
    outputs: ResourceOutputs,
    db_primitive: Any,
    db_user: str,
    db_password: Password,
    connectors: CloudSQLConnectors | None = None,
    **kwargs: Any,
) -> tuple[_Database, dict[str, Any]]:
    return _Database(db_primitive, db_user, db_password, outputs=outputs, connectors=connectors), kwargs


def _found(
    db: Any, db_user: str, db_password: Password, credentials: Any = None, **kwargs: Any
) -> tuple[_Database, dict[str, Any]]:
    return _Database(db, db_user, db_password, credentials=credentials), kwargs


def _database(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[_Database, dict[str, Any], dict[str, Any]]:
    """The engine builders' two forms: ours, ``(outputs, db_primitive, ...)`` inside the runtime,
    and BuildFlow's ``(db, db_user, db_password, credentials=None)``. Returns the database, the
    connector options and the keyword arguments left for SQLAlchemy.

    BuildFlow's form declares its user (one logging in with a password) as ``SessionDep`` does,
    so that ``bfctl apply`` makes it."""
    options = _connector_options(kwargs)
    ours = isinstance(args[0], Mapping) if args else "outputs" in kwargs
    database, rest = (_given if ours else _found)(*args, **kwargs)
    if database.found_at_first_use:
        if all(d is not database.primitive for d in _ENGINE_DATABASES):
            _ENGINE_DATABASES.append(database.primitive)
            _declare_pool(database.primitive, rest)
        _declare_login(database.primitive, database.user, database.password, options["enable_iam_auth"])
    rest.setdefault("pool_pre_ping", True)  # a restarted database is picked up again without restarting
    _sized_pool(database.primitive, rest)
    return database, options, rest


def _fresh_in_forked_workers(made: Any, database: _Database) -> None:
    """An engine made at import may have connected there (``create_all``): forked workers must
    not share the parent's pooled connections, so each drops them (without closing them), nor
    its Cloud SQL connector, whose thread the fork did not copy: each makes its own."""
    ref = weakref.ref(made)

    def drop() -> None:
        if (alive := ref()) is not None:
            alive.dispose(close=False)
            database.forget_connectors()

    os.register_at_fork(after_in_child=drop)


@overload
def engine(db: Any, db_user: str, db_password: Password, credentials: Any = None, **kwargs: Any) -> Any: ...


@overload
def engine(
    outputs: ResourceOutputs,
    db_primitive: Any,
    db_user: str,
    db_password: Password,
    connectors: CloudSQLConnectors | None = None,
    **kwargs: Any,
) -> Any: ...


def engine(*args: Any, **kwargs: Any) -> Any:
    """A sync SQLAlchemy engine on a Cloud SQL database: psycopg to the embedded PostgreSQL
    locally, pg8000 through the Cloud SQL connector on gcp.

    ``engine(db, db_user, db_password, credentials=None, **kwargs)`` is BuildFlow's form, for
    module-level code (``Base.metadata.create_all(engine(db, "user", "pw"))``): nothing connects
    until first use, which finds the database in the served stack. When bfctl imports the flow only to
    read it (``plan``, ``apply``), that form gives a dry engine: what runs on it does nothing.
    ``engine(outputs, db_primitive, db_user, db_password, connectors=None, **kwargs)`` connects
    with outputs the runtime gives. Connections are checked before use.
    """
    database, options, kwargs = _database(args, kwargs)
    from sqlalchemy import create_engine, create_mock_engine, event

    if database.dry:
        return create_mock_engine("postgresql+psycopg://", lambda *statement, **parameters: None)
    if database.target == "gcp":
        made = create_engine("postgresql+pg8000://", creator=lambda: database.connect(options), **kwargs)
    else:
        kwargs.setdefault("connect_args", {"connect_timeout": 5})
        made = create_engine("postgresql+psycopg://", **kwargs)
        event.listen(made, "do_connect", database.connect_params("dbname"))
    if database.found_at_first_use:
        _fresh_in_forked_workers(made, database)
    return made


def async_engine(*args: Any, **kwargs: Any) -> Any:
    """An asyncio engine (asyncpg, directly locally, through the connector on gcp), in the same
    two forms as :func:`engine`; it never connects before first use. BuildFlow's form is a
    coroutine, as BuildFlow's was: ``await async_engine(db, db_user, db_password)``."""
    database, options, kwargs = _database(args, kwargs)
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import create_async_engine

    if database.target == "gcp":
        made = create_async_engine(
            "postgresql+asyncpg://", async_creator=lambda: database.connect_async(options), **kwargs
        )
    else:
        kwargs.setdefault("connect_args", {"timeout": 5})
        made = create_async_engine("postgresql+asyncpg://", **kwargs)
        event.listen(made.sync_engine, "do_connect", database.connect_params("database"))
    return _awaited(made) if database.found_at_first_use else made


async def _awaited(made: Any) -> Any:
    return made


def SessionDepBuilder(
    db_primitive: Any,
    db_user: str,
    db_password: Password,
    expire_on_commit: bool = False,
    autoflush: bool = False,
    **kwargs: Any,
) -> type:
    """A PROCESS dependency whose ``.session`` is a SQLAlchemy ``Session``.

    ``db_password`` is a literal or a :class:`buildflow.secrets.Secret`, whose value is looked
    up when each worker builds its engine (never when the flow module is imported).
    ``kwargs`` go to ``create_engine``, except the gcp target's connection options:
    ``ip_type`` (``"public"``, the default, ``"private"`` for an instance reached over its VPC,
    or ``"psc"``) and ``enable_iam_auth`` (log in as an IAM principal with an OAuth token
    instead of ``db_password``). On Cloud Run that principal is the service's account: the
    stack makes it a user of the instance (with the roles of the flow's password users, so it
    may use what their migrations made) and the service logs in as it, whatever ``db_user``
    says; served from elsewhere, ``db_user`` names the principal, e.g. ``"me@example.com"`` or
    ``"sa-name@project.iam"``. The local target ignores both.
    """
    _declare_login(db_primitive, db_user, db_password, bool(kwargs.get("enable_iam_auth")))
    _declare_pool(db_primitive, kwargs)

    @dependency(Scope.REPLICA)
    class SessionMaker:
        def __init__(self, outputs: ResourceOutputs, connectors: CloudSQLConnectors) -> None:
            from sqlalchemy.orm import sessionmaker

            self.engine = engine(outputs, db_primitive, db_user, db_password, connectors, **kwargs)
            self.SessionLocal: Callable[[], Any] = sessionmaker(
                bind=self.engine, autoflush=autoflush, expire_on_commit=expire_on_commit
            )

        def teardown(self) -> None:
            self.engine.dispose()

    @dependency(Scope.PROCESS)
    class SessionDep:
        def __init__(self, maker: SessionMaker) -> None:
            self.session = maker.SessionLocal()

        def teardown(self) -> None:
            self.session.close()

    return _named(SessionDep, SessionMaker, db_primitive)


def AsyncSessionDepBuilder(
    db_primitive: Any,
    db_user: str,
    db_password: Password,
    expire_on_commit: bool = False,
    autoflush: bool = False,
    **kwargs: Any,
) -> type:
    """A PROCESS dependency whose ``.session`` is a SQLAlchemy ``AsyncSession``.

    Takes the same gcp connection options as :func:`SessionDepBuilder`.
    """
    _declare_login(db_primitive, db_user, db_password, bool(kwargs.get("enable_iam_auth")))
    _declare_pool(db_primitive, kwargs)

    @dependency(Scope.REPLICA)
    class AsyncSessionMaker:
        def __init__(self, outputs: ResourceOutputs, connectors: CloudSQLConnectors) -> None:
            from sqlalchemy.ext.asyncio import async_sessionmaker

            self.engine = async_engine(outputs, db_primitive, db_user, db_password, connectors, **kwargs)
            self.SessionLocal: Callable[[], Any] = async_sessionmaker(
                bind=self.engine, autoflush=autoflush, expire_on_commit=expire_on_commit
            )

        async def teardown(self) -> None:
            await self.engine.dispose()

    @dependency(Scope.PROCESS)
    class AsyncSessionDep:
        async def __init__(self, maker: AsyncSessionMaker) -> None:  # type: ignore[misc]  # the graph awaits an async __init__: built on the loop
            self.session = maker.SessionLocal()

        async def teardown(self) -> None:
            await self.session.close()

    return _named(AsyncSessionDep, AsyncSessionMaker, db_primitive)


#: BuildFlow 0.3.0's name; ``SessionDep(db_primitive, db_user, db_password)``.
SessionDep = SessionDepBuilder
AsyncSessionDep = AsyncSessionDepBuilder

__all__ = [
    "AsyncSessionDep",
    "AsyncSessionDepBuilder",
    "CloudSQLConnectors",
    "EnginePool",
    "SessionDep",
    "SessionDepBuilder",
    "async_engine",
    "engine",
    "engine_databases",
    "engine_pools",
    "iam_auth",
    "session_users",
]
