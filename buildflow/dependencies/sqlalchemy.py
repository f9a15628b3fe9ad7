"""SQLAlchemy sessions on a managed Cloud SQL database, as BuildFlow's ``SessionDep``.

The engine and its pool are built once per worker (REPLICA); each request gets its own
session (PROCESS), closed after the handler returns, which rolls back anything uncommitted.
On the local target the engine points at the embedded PostgreSQL that ``bfctl apply`` made.
On the gcp target it connects through the Cloud SQL Python Connector (TLS to the instance,
no IP allow-list or proxy to run): ``pg8000`` for sync engines, ``asyncpg`` for asyncio ones.
No postponed annotations: the dependency classes below are built inside functions and their
annotations name local classes.
"""

import asyncio
import os
import threading
from collections.abc import Callable
from typing import Any

from buildflow.dependencies.flow_dependencies import FlowCredentials, ResourceOutputs
from buildflow.dependencies.scopes import Scope, dependency
from buildflow.secrets import Password, reveal

#: gcp-target connection options, taken out of the builders' engine keyword arguments.
_CONNECTOR_OPTIONS = ("ip_type", "enable_iam_auth")
_IP_TYPES = ("public", "private", "psc")

#: gcloud's variable overriding the Cloud SQL Admin API's endpoint, honoured by the connector here.
SQLADMIN_ENDPOINT_ENV = "CLOUDSDK_API_ENDPOINT_OVERRIDES_SQLADMIN"

_USERS_ATTR = "_buildflow_session_users"


def session_users(db_primitive: Any) -> list[tuple[str, Password]]:
    """(user, password) pairs the flow's session dependencies log in with."""
    return list(getattr(db_primitive, _USERS_ATTR, []))


def _named(session_dep: type, maker: type, db_primitive: Any) -> type:
    """Names that say which database in errors and logs; the maker (REPLICA) stays reachable
    as ``SessionDep.SessionMaker`` for dependencies that need the engine itself."""
    for cls in (session_dep, maker):
        cls.__qualname__ = cls.__name__ = f"{cls.__name__}[{db_primitive.database_name}]"
    session_dep.SessionMaker = maker  # type: ignore[attr-defined]  # an attribute given to the built class
    return session_dep


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
        endpoints do (a private endpoint, or a stand-in of Google's side).
        """
        options: dict[str, Any] = {"credentials": self.credentials} if self.credentials is not None else {}
        endpoint = os.environ.get(SQLADMIN_ENDPOINT_ENV)
        if endpoint:
            options["sqladmin_api_endpoint"] = endpoint.rstrip("/")
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


def _cloud_sql_connect_args(
    outputs: ResourceOutputs, db_primitive: Any, user: str, password: str, options: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The instance connection name and the driver arguments of ``db_primitive`` on gcp."""
    out = outputs[db_primitive.primitive_id()]
    args: dict[str, Any] = {"user": user, "db": out["database"], **options}
    if not options["enable_iam_auth"]:
        args["password"] = password
    return out["connection_name"], args


def _require(connectors: CloudSQLConnectors | None) -> CloudSQLConnectors:
    if connectors is None:
        raise TypeError("on the gcp target an engine needs `connectors=` (the worker's CloudSQLConnectors)")
    return connectors


def database_url(outputs: ResourceOutputs, db_primitive: Any, user: str, password: str, driver: str) -> Any:
    """The SQLAlchemy URL of ``db_primitive`` as applied (local target)."""
    from sqlalchemy.engine import URL

    out = outputs[db_primitive.primitive_id()]
    return URL.create(
        f"postgresql+{driver}",
        username=user,
        password=password,
        host=out["host"],
        port=int(out["port"]),
        database=out["database"],
    )


def engine(
    outputs: ResourceOutputs,
    db_primitive: Any,
    db_user: str,
    db_password: Password,
    connectors: CloudSQLConnectors | None = None,
    **kwargs: Any,
) -> Any:
    """A sync engine (psycopg locally, pg8000 through the connector on gcp); checks
    connections before use so a restarted database is picked up again without restarting."""
    from sqlalchemy import create_engine

    options = _connector_options(kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    if outputs.target == "gcp":
        shared = _require(connectors)
        name, args = _cloud_sql_connect_args(outputs, db_primitive, db_user, reveal(db_password), options)
        return create_engine(
            "postgresql+pg8000://", creator=lambda: shared.sync().connect(name, "pg8000", **args), **kwargs
        )
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    return create_engine(database_url(outputs, db_primitive, db_user, reveal(db_password), "psycopg"), **kwargs)


def async_engine(
    outputs: ResourceOutputs,
    db_primitive: Any,
    db_user: str,
    db_password: Password,
    connectors: CloudSQLConnectors | None = None,
    **kwargs: Any,
) -> Any:
    """An asyncio engine (asyncpg, directly locally, through the connector on gcp)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    options = _connector_options(kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    if outputs.target == "gcp":
        shared = _require(connectors)
        name, args = _cloud_sql_connect_args(outputs, db_primitive, db_user, reveal(db_password), options)

        async def connect() -> Any:
            return await (await shared.for_asyncio()).connect_async(name, "asyncpg", **args)

        return create_async_engine("postgresql+asyncpg://", async_creator=connect, **kwargs)
    kwargs.setdefault("connect_args", {"timeout": 5})
    return create_async_engine(database_url(outputs, db_primitive, db_user, reveal(db_password), "asyncpg"), **kwargs)


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
    instead of ``db_password``; ``db_user`` is then e.g. ``"sa-name@project.iam"``, and that
    database user is not created by bfctl). The local target ignores both.
    """
    if not kwargs.get("enable_iam_auth"):
        _declare_user(db_primitive, db_user, db_password)

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
    if not kwargs.get("enable_iam_auth"):
        _declare_user(db_primitive, db_user, db_password)

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
    "SessionDep",
    "SessionDepBuilder",
    "async_engine",
    "engine",
    "session_users",
]
