import dataclasses

from buildflow import Flow
from buildflow.dependencies.analysis import AnalysisQuery
from buildflow.io.portable import AnalysisTable

app = Flow()


@dataclasses.dataclass
class Sale:
    region: str
    amount: float


@dataclasses.dataclass
class RegionTotal:
    region: str
    total: float
    sales: int


sales = AnalysisTable("sales").options(schema=Sale)  # the schema lets apply create the table
app.manage(sales)
sales_query = AnalysisQuery(sales)


@app.collector("/sales", method="POST", sink=sales)
def collect(sale: Sale) -> Sale:
    return sale


service = app.service()


@service.endpoint("/totals", method="GET")
async def totals(query: sales_query, at_least: float = 0) -> list[RegionTotal]:
    return await query.rows_as(
        RegionTotal,
        "select region, sum(amount) as total, count(*) as sales from {table}"
        " group by region having sum(amount) >= @at_least order by total desc",
        {"at_least": at_least},
    )


@service.endpoint("/regions", method="GET")
def regions(query: sales_query) -> list[str]:
    """A sync handler reads through query.sync."""
    return [row["region"] for row in query.sync.rows("select distinct region from {table} order by region")]
