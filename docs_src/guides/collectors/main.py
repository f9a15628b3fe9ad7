import dataclasses

from sqlalchemy import text

from buildflow import Flow
from buildflow.dependencies.sink import SinkDependencyBuilder
from buildflow.dependencies.sqlalchemy import SessionDep
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance, CloudSQLTable
from buildflow.secrets import Secret
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings

app = Flow()
instance = CloudSQLInstance(
    instance_name="shop-db",
    project_id="my-project",
    region="us-central1",
    database_version=CloudSQLDatabaseVersion.POSTGRES_15,
    settings=CloudSQLInstanceSettings(tier="db-f1-micro"),
)
database = CloudSQLDatabase(instance=instance, database_name="shop")
app.manage(instance, database)
orders = CloudSQLTable(database, "orders")
DB = SessionDep(db_primitive=database, db_user="shop", db_password=Secret("shop-db-password"))


@dataclasses.dataclass
class Order:
    customer: str
    item: str
    quantity: int


@app.collector("/orders", method="POST", sink=orders, max_wait=0.002)
def collect(order: Order) -> Order | None:
    """One row per order; an order of nothing is accepted and stores nothing."""
    return order if order.quantity > 0 else None


@app.collector("/baskets", method="POST", sink=orders)
def collect_basket(basket: list[Order]) -> list[Order]:
    """A list of rows is written in one transaction."""
    return basket


service = app.service()
order_sink = SinkDependencyBuilder(orders)


@service.endpoint("/reorder", method="POST")
async def reorder(order: Order, sink: order_sink) -> str:
    await sink.push(order)  # returns once the row is committed
    return "stored"


@service.endpoint("/orders/count", method="GET")
def count(db: DB) -> dict[str, int]:
    return {"rows": db.session.execute(text("select count(*) from orders")).scalar_one()}
