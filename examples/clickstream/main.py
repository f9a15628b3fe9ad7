"""Clickstream: a collector of page views into an analysis table (BigQuery in the cloud, a
DuckDB table locally), and an endpoint that counts views by page."""

import dataclasses
import datetime

from buildflow import Flow
from buildflow.dependencies.analysis import AnalysisQuery
from buildflow.io.portable import AnalysisTable

app = Flow()


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


# Managed, so `bfctl apply` creates it (BigQuery on gcp); its schema lets it be queried before the first view.
page_views = AnalysisTable("page_views").options(schema=ViewRow)
app.manage(page_views)
views = AnalysisQuery(page_views)


@app.collector("/views", method="POST", sink=page_views, max_wait=0.002)
def collect(view: PageView) -> ViewRow:
    """One page view in, one row out; answered once the row is stored."""
    return ViewRow(page=view.page, user=view.user, at=view.at or datetime.datetime.now(datetime.UTC))


service = app.service()


@service.endpoint("/counts", method="GET")
async def counts(query: views, limit: int = 20) -> dict[str, int]:
    """Views by page, most viewed first (the same SQL on DuckDB locally and BigQuery on gcp)."""
    rows = await query.rows(
        "select page, count(*) as views from {table} group by page order by views desc, page limit @limit",
        {"limit": limit},
    )
    return {row["page"]: row["views"] for row in rows}


if __name__ == "__main__":
    app.run()
