"""SQLAlchemy sessions on a managed Cloud SQL database, as BuildFlow's ``SessionDep``.

The engine and its pool are built once per worker (REPLICA); each request gets its own
session (PROCESS), closed after the handler returns, which rolls back anything uncommitted.
On the local target the engine points at the embedded PostgreSQL that ``bfctl apply`` made.
No postponed annotations: the dependency classes below are built inside functions and their
annotations name local classes.
"""

from typing import Any, Callable

from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.dependencies.scopes import Scope, dependency

_USERS_ATTR = "_buildflow_session_users"


def session_users(db_primitive: Any) -> list[tuple[str, str]]:
    """(user, password) pairs the flow's session dependencies log in with."""
    return list(getattr(db_primitive, _USERS_ATTR, []))


def _declare_user(db_primitive: Any, user: str, password: str) -> None:
    users = getattr(db_primitive, _USERS_ATTR, None)
    if users is None:
        users = []
        object.__setattr__(db_primitive, _USERS_ATTR, users)
    if (user, password) not in users:
        users.append((user, password))


def database_url(outputs: ResourceOutputs, db_primitive: Any, user: str, password: str, driver: str) -> Any:
    """The SQLAlchemy URL of ``db_primitive`` as applied (local target)."""
    from sqlalchemy.engine import URL

    out = outputs[db_primitive.primitive_id()]
    return URL.create(
        f"postgresql+{driver}", username=user, password=password,
        host=out["host"], port=int(out["port"]), database=out["database"],
    )


def engine(outputs: ResourceOutputs, db_primitive: Any, db_user: str, db_password: str, **kwargs: Any) -> Any:
    """A sync engine (psycopg locally); checks connections before use so a restarted
    database is picked up again without restarting the app."""
    from sqlalchemy import create_engine

    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    return create_engine(database_url(outputs, db_primitive, db_user, db_password, "psycopg"), **kwargs)


def async_engine(outputs: ResourceOutputs, db_primitive: Any, db_user: str, db_password: str, **kwargs: Any) -> Any:
    """An asyncio engine (asyncpg locally)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("connect_args", {"timeout": 5})
    return create_async_engine(database_url(outputs, db_primitive, db_user, db_password, "asyncpg"), **kwargs)


def SessionDepBuilder(
    db_primitive: Any,
    db_user: str,
    db_password: str,
    expire_on_commit: bool = False,
    autoflush: bool = False,
    **kwargs: Any,
) -> type:
    """A PROCESS dependency whose ``.session`` is a SQLAlchemy ``Session``."""
    _declare_user(db_primitive, db_user, db_password)

    @dependency(Scope.REPLICA)
    class SessionMaker:
        def __init__(self, outputs: ResourceOutputs) -> None:
            from sqlalchemy.orm import sessionmaker

            self.engine = engine(outputs, db_primitive, db_user, db_password, **kwargs)
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

    SessionDep.SessionMaker = SessionMaker  # type: ignore[attr-defined]  # REPLICA: inject it for the engine
    SessionDep.__qualname__ = SessionDep.__name__ = f"SessionDep[{db_primitive.database_name}]"
    SessionMaker.__qualname__ = SessionMaker.__name__ = f"SessionMaker[{db_primitive.database_name}]"
    return SessionDep


def AsyncSessionDepBuilder(
    db_primitive: Any,
    db_user: str,
    db_password: str,
    expire_on_commit: bool = False,
    autoflush: bool = False,
    **kwargs: Any,
) -> type:
    """A PROCESS dependency whose ``.session`` is a SQLAlchemy ``AsyncSession``."""
    _declare_user(db_primitive, db_user, db_password)

    @dependency(Scope.REPLICA)
    class AsyncSessionMaker:
        def __init__(self, outputs: ResourceOutputs) -> None:
            from sqlalchemy.ext.asyncio import async_sessionmaker

            self.engine = async_engine(outputs, db_primitive, db_user, db_password, **kwargs)
            self.SessionLocal: Callable[[], Any] = async_sessionmaker(
                bind=self.engine, autoflush=autoflush, expire_on_commit=expire_on_commit
            )

        async def teardown(self) -> None:
            await self.engine.dispose()

    @dependency(Scope.PROCESS)
    class AsyncSessionDep:
        async def __init__(self, maker: AsyncSessionMaker) -> None:  # async: built on the loop
            self.session = maker.SessionLocal()

        async def teardown(self) -> None:
            await self.session.close()

    AsyncSessionDep.SessionMaker = AsyncSessionMaker  # type: ignore[attr-defined]
    AsyncSessionDep.__qualname__ = AsyncSessionDep.__name__ = f"AsyncSessionDep[{db_primitive.database_name}]"
    AsyncSessionMaker.__qualname__ = AsyncSessionMaker.__name__ = f"AsyncSessionMaker[{db_primitive.database_name}]"
    return AsyncSessionDep


#: BuildFlow 0.3.0's name; ``SessionDep(db_primitive, db_user, db_password)``.
SessionDep = SessionDepBuilder
AsyncSessionDep = AsyncSessionDepBuilder

__all__ = ["AsyncSessionDep", "AsyncSessionDepBuilder", "SessionDep", "SessionDepBuilder", "async_engine",
           "engine", "session_users"]
