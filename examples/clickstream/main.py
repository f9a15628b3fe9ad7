"""Clickstream: a collector of page views into an analysis table (BigQuery in the cloud, a
DuckDB table locally), and an endpoint that counts views by page."""

import dataclasses
import datetime
from pathlib import Path

from buildflow import Flow
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.io.portable import AnalysisTable

app = Flow()
page_views = AnalysisTable("page_views")


@dataclasses.dataclass
class PageView:
    page: str
    user: str
    at: datetime.datetime | None = None


@dataclasses.dataclass
class ViewRow:
    page: str
    user: str
    at: datetime.datetime


@app.collector("/views", method="POST", sink=page_views, max_wait=0.002)
def collect(view: PageView) -> ViewRow:
    """One page view in, one row out; answered once the row is stored."""
    return ViewRow(page=view.page, user=view.user, at=view.at or datetime.datetime.now(datetime.UTC))


service = app.service()


@service.endpoint("/counts", method="GET")
def counts(outputs: ResourceOutputs, limit: int = 20) -> dict[str, int]:
    """Views by page, most viewed first."""
    from buildflow.storage.duckdb_access import duckdb_connection

    out = outputs[page_views.primitive_id()]
    query = (
        f'select page, count(*) as views from "{out["table"]}"'  # noqa: S608 - the flow's own sink table
        " group by page order by views desc, page limit ?"
    )
    with duckdb_connection(Path(out["database"])) as conn:
        rows = conn.execute(query, [limit]).fetchall()
    return dict(rows)


if __name__ == "__main__":
    app.run()
