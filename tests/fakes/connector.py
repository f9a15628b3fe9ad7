"""A stand-in for the Cloud SQL connector class, and the embedded PostgreSQL it reaches.

The ``connectors`` fixture puts ``StandInConnector`` in place of ``google.cloud.sql.connector``'s
classes: it records how it is made, called and closed, and opens real connections (pg8000,
asyncpg) to the instance the module-scoped ``server`` fixture applies on the local target.
Tests that use it import both fixtures.
"""

import asyncio
from collections.abc import Iterator
from typing import Any, ClassVar

import asyncpg
import google.cloud.sql.connector as connector_module
import pg8000.dbapi
import pytest
from support import cloud_sql_instance

from bfctl.providers.local import LocalProvider
from bfctl.providers.local.postgres import EmbeddedPostgres
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance, CloudSQLUser

PASSWORD = "c0nnector-Pw"
CONNECTION_NAME = "my-project:us-central1:notes-db"


def declare() -> tuple[CloudSQLInstance, CloudSQLDatabase, CloudSQLDatabase]:
    instance = cloud_sql_instance("notes-db")
    return instance, CloudSQLDatabase("notes", instance), CloudSQLDatabase("audit", instance)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """An embedded PostgreSQL with databases notes and audit and a login role notes."""
    root = tmp_path_factory.mktemp("instance")
    instance, notes, audit = declare()
    provider = LocalProvider(root, "dev")
    provider.apply(provider.plan([instance, notes, audit, CloudSQLUser("notes", PASSWORD, instance)]))
    out = provider.outputs()[instance.primitive_id()]
    yield out["host"], out["port"]
    for directory in (root / ".buildflow" / "local").glob("*/*"):
        EmbeddedPostgres(directory).stop()


class StandInConnector:
    """Records its life; connects to the stand-in instance instead of Google's."""

    made: ClassVar[list["StandInConnector"]] = []
    address: tuple[str, int] = ("", 0)

    def __init__(self, kind: str = "sync", **options: Any) -> None:
        self.kind, self.options = kind, options
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.closed = False
        StandInConnector.made.append(self)

    def connect(self, name: str, driver: str, **kwargs: Any) -> Any:
        self.calls.append((name, driver, kwargs))
        host, port = self.address
        return pg8000.dbapi.connect(
            user=kwargs["user"], password=kwargs["password"], database=kwargs["db"], host=host, port=port
        )

    async def connect_async(self, name: str, driver: str, **kwargs: Any) -> Any:
        self.calls.append((name, driver, kwargs))
        host, port = self.address
        return await asyncpg.connect(
            user=kwargs["user"], password=kwargs["password"], database=kwargs["db"], host=host, port=port
        )

    def close(self) -> None:
        self.closed = True

    async def close_async(self) -> None:
        self.closed = True


async def stand_in_async_connector(**options: Any) -> "StandInConnector":
    asyncio.get_running_loop()  # as the real one: must be called on the loop it serves
    return StandInConnector("async", **options)


@pytest.fixture
def connectors(server: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> list[StandInConnector]:
    StandInConnector.made = []
    StandInConnector.address = server
    monkeypatch.setattr(connector_module, "Connector", StandInConnector)
    monkeypatch.setattr(connector_module, "create_async_connector", stand_in_async_connector)
    return StandInConnector.made
