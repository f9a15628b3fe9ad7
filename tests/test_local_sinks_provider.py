"""The local target plans, applies and destroys sink primitives like Cloud SQL ones."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from bfctl.providers import ApplyError, UnsupportedPrimitiveError
from bfctl.providers.local import LocalProvider
from bfctl.runtime.sinks import writer_for
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.io.duckdb import DuckDBTable
from buildflow.io.gcp import BigQueryDataset, BigQueryTable, GCSBucket
from buildflow.io.local import Empty, File
from buildflow.io.portable import AnalysisTable
from buildflow.io.primitive import GCPPrimitive, PrimitiveValidationError
from buildflow.storage.duckdb_access import duckdb_connection
from buildflow.types.portable import FileFormat


@dataclasses.dataclass
class Click:
    page: str
    n: int


@dataclasses.dataclass
class ClickV2:
    page: str
    n: int
    referrer: str | None = None


def declare(tmp_path: Path) -> dict[str, object]:
    dataset = BigQueryDataset("my-project", "analytics")
    return {
        "dataset": dataset,
        "bq": BigQueryTable(dataset, "clicks").options(schema=Click),
        "analysis": AnalysisTable("page_views").options(schema=Click),
        "duck": DuckDBTable("mine.duckdb", "clicks").options(schema=Click),
        "file": File("exports/clicks.json", FileFormat.JSON),
        "bucket": GCSBucket("my-project", "my-clicks", "raw/clicks.json", FileFormat.JSON),
        "empty": Empty(),
    }


def tables(path: Path) -> dict[str, list[str]]:
    with duckdb_connection(path) as connection:
        rows = connection.execute(
            "SELECT table_name, column_name FROM information_schema.columns ORDER BY ALL"
        ).fetchall()
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return out


def test_plan_apply_update_destroy(tmp_path: Path) -> None:
    primitives = declare(tmp_path)
    provider = LocalProvider(tmp_path, "dev")
    plan = provider.plan(list(primitives.values()))
    assert [(c.resource_type, c.action) for c in plan.changes] == [
        ("gcp.bigquery.Dataset", "create"),
        ("gcp.bigquery.Table", "create"),
        ("portable.AnalysisTable", "create"),
        ("duckdb.Table", "create"),
        ("local.File", "create"),
        ("gcp.storage.Bucket", "create"),
    ]  # Empty has nothing to make
    outputs = provider.apply(plan)
    stack = tmp_path / ".buildflow" / "local" / "dev"
    bq = outputs["my-project.analytics.clicks"]
    assert bq == {"engine": "duckdb", "database": str(stack / "bigquery" / "my-project.analytics.duckdb"),
                  "table": "clicks", "stand_in": "DuckDB stand-in for BigQuery"}  # fmt: skip
    assert outputs["analysis_table:page_views"]["database"] == str(stack / "analysis.duckdb")
    assert tables(stack / "bigquery" / "my-project.analytics.duckdb") == {"clicks": ["n", "page"]}
    assert tables(tmp_path / "mine.duckdb") == {"clicks": ["n", "page"]}
    assert (tmp_path / "exports").is_dir() and (stack / "gcs" / "my-clicks").is_dir()
    assert not provider.plan(list(primitives.values())).has_changes

    # A new field: the tables gain a nullable column, nothing else changes.
    for key in ("bq", "analysis", "duck"):
        primitives[key].schema = ClickV2  # type: ignore[attr-defined]  # these three are tables: they have a schema
    plan = provider.plan(list(primitives.values()))
    assert [c.resource_id for c in plan.changes if c.action == "update"] == [
        "my-project.analytics.clicks", "analysis_table:page_views", "duckdb:mine.duckdb:clicks",
    ]  # fmt: skip
    provider.apply(plan)
    assert tables(stack / "analysis.duckdb") == {"page_views": ["n", "page", "referrer"]}

    # The app writes; destroy keeps what is the user's and removes what the stack made.
    async def write() -> None:
        sink = primitives["file"]
        writer = writer_for(sink, None, ResourceOutputs(provider.outputs()), tmp_path)
        await writer.start()
        await writer.write([{"page": "/", "n": 1}])
        await writer.stop()

    asyncio.run(write())
    with duckdb_connection(tmp_path / "mine.duckdb") as connection:
        connection.execute("CREATE TABLE notes (x INTEGER)")  # the user's own table in the same file
    deleted = provider.destroy()
    assert {c.action for c in deleted.changes} == {"delete"} and len(deleted.changes) == 6
    assert len(list((tmp_path / "exports").glob("clicks-*.json"))) == 1  # output files are user data
    assert tables(tmp_path / "mine.duckdb") == {"notes": ["x"]}
    assert not stack.exists() and provider.outputs() == {}


def test_a_file_sink_folder_made_by_apply_goes_when_empty(tmp_path: Path) -> None:
    sink = File("deep/er/out.csv", FileFormat.CSV)
    provider = LocalProvider(tmp_path, "dev")
    provider.apply(provider.plan([sink]))
    assert (tmp_path / "deep" / "er").is_dir()
    provider.destroy()
    assert not (tmp_path / "deep").exists()


def test_destroy_protection_and_non_empty_buckets_are_refused(tmp_path: Path) -> None:
    dataset = BigQueryDataset("my-project", "analytics")
    table = BigQueryTable(dataset, "clicks").options(schema=Click, destroy_protection=True)
    bucket = GCSBucket("my-project", "my-clicks")
    provider = LocalProvider(tmp_path, "dev")
    provider.apply(provider.plan([dataset, table, bucket]))
    (tmp_path / ".buildflow" / "local" / "dev" / "gcs" / "my-clicks" / "kept.json").write_text("{}")
    with pytest.raises(ApplyError, match="destroy_protection=True"):
        provider.destroy()
    table.options(destroy_protection=False)
    provider.apply(provider.plan([dataset, table, bucket]))
    with pytest.raises(ApplyError, match=r"holds 1 object\(s\).*force_destroy=True"):
        provider.destroy()
    bucket.options(force_destroy=True)
    provider.apply(provider.plan([dataset, table, bucket]))
    provider.destroy()
    assert provider.outputs() == {}


def test_refresh_notices_a_dropped_table(tmp_path: Path) -> None:
    table = AnalysisTable("page_views").options(schema=Click)
    provider = LocalProvider(tmp_path, "dev")
    provider.apply(provider.plan([table]))
    with duckdb_connection(tmp_path / ".buildflow" / "local" / "dev" / "analysis.duckdb") as connection:
        connection.execute("DROP TABLE page_views")
    assert [c.action for c in provider.plan([table]).changes] == ["create"]


def test_what_the_local_target_refuses(tmp_path: Path) -> None:
    @dataclasses.dataclass
    class Spanner(GCPPrimitive):
        resource_type = "gcp.spanner.Instance"

        def primitive_id(self) -> str:
            return "spanner"

        def desired_properties(self) -> dict[str, object]:
            return {}

    provider = LocalProvider(tmp_path, "dev")
    with pytest.raises(UnsupportedPrimitiveError, match=r"cannot make Spanner .*it makes .*BigQueryTable"):
        provider.plan([Spanner()])
    with pytest.raises(PrimitiveValidationError, match=r"needs BigQueryDataset 'my-project\.analytics'"):
        provider.plan([BigQueryTable(BigQueryDataset("my-project", "analytics"), "t")])
    with pytest.raises(PrimitiveValidationError, match="needs a name"):
        provider.plan([AnalysisTable()])
