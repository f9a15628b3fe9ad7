"""The Data page's latest rows of a sink's table: the embedded PostgreSQL and a DuckDB file that
the local target applies, read as the dashboard reads them while the sink's writer is open."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bfctl.providers.local import LocalProvider
from bfctl.runtime.dashboard import tables
from bfctl.runtime.sinks import writer_for
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.io.duckdb import DuckDBTable
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance, CloudSQLTable
from buildflow.io.local import File
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings
from buildflow.types.portable import FileFormat

AT = datetime.datetime(2026, 5, 1, 12, 30, tzinfo=datetime.UTC)


@dataclasses.dataclass
class Visit:
    page: str
    n: int
    at: datetime.datetime


@dataclasses.dataclass
class Project:
    root: Path
    outputs: ResourceOutputs
    sinks: list[Any]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    instance = CloudSQLInstance(
        "shop-db", "my-project", CloudSQLDatabaseVersion.POSTGRES_15, CloudSQLInstanceSettings(tier="db-f1-micro"),
        "us-central1",
    )  # fmt: skip
    database = CloudSQLDatabase("app", instance)
    sinks = [
        CloudSQLTable(database, "visits").options(schema=Visit),
        DuckDBTable(database="shop.duckdb", table="visits").options(schema=Visit),
        File("visits.csv", FileFormat.CSV),
    ]
    root = tmp_path_factory.mktemp("project")
    provider = LocalProvider(root, "dev")
    provider.apply(provider.plan([instance, database, *sinks]))
    yield Project(root, ResourceOutputs(provider.outputs()), sinks)
    provider.destroy()


def latest_after_writing(project: Project, sink: Any, visits: list[Visit]) -> Any:
    """Write ``visits`` with the sink's own writer, then read the latest rows while it is open."""
    writer = writer_for(sink, None, project.outputs, project.root)
    outputs = project.outputs[sink.primitive_id()]

    async def go() -> Any:
        await writer.start()
        try:
            convert = writer.converter_for(Visit)
            await writer.write([convert(v) for v in visits])
            return await tables.latest(writer, outputs, project.root)
        finally:
            await writer.stop()

    return asyncio.run(go())


@pytest.mark.parametrize("engine", ["postgres", "duckdb"])
def test_the_latest_rows_of_a_local_table_come_newest_first(project: Project, engine: str) -> None:
    [sink] = [s for s in project.sinks if project.outputs[s.primitive_id()]["engine"] == engine]
    visits = [Visit(f"/p{i}", i, AT) for i in range(tables.LIMIT + 5)]
    found = latest_after_writing(project, sink, visits)
    assert found["columns"] == ["page", "n", "at"]
    assert [row[1] for row in found["rows"]] == list(reversed(range(5, tables.LIMIT + 5)))
    assert datetime.datetime.fromisoformat(found["rows"][0][2]) == AT
    shown = json.dumps(found)  # JSON as it is, and nothing of the login in it
    password_file = project.outputs[sink.primitive_id()].get("password_file")
    if password_file is not None:
        assert Path(password_file).read_text().strip() not in shown


def test_a_sink_that_is_no_table_has_no_rows_to_show(project: Project) -> None:
    [csv] = [s for s in project.sinks if isinstance(s, File)]
    assert latest_after_writing(project, csv, [Visit("/", 1, AT)]) is None
