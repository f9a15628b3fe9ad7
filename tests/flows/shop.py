"""A shop: endpoints with dependencies and a dispatcher function, a collector of orders into a
DuckDB table, and a consumer of files dropped in a folder into a CSV file."""

import dataclasses
import json
import logging

from opentelemetry import trace

from buildflow import Flow
from buildflow.dependencies import Scope, dependency
from buildflow.io.duckdb import DuckDBTable
from buildflow.io.local import File, LocalFileChangeStream
from buildflow.pipedream import Dispatcher
from buildflow.types.local import LocalFileChangeEvent
from buildflow.types.portable import FileFormat

log = logging.getLogger("shop")
app = Flow(flow_id="shop")


@dependency(Scope.REPLICA)
class Catalog:
    def __init__(self) -> None:
        self.prices = {1: 2.5, 2: 4.0}


@dependency(Scope.PROCESS)
class Pricing:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def price(self, item_id: int) -> float:
        return self.catalog.prices.get(item_id, 1.0)


dispatcher = Dispatcher()


@dispatcher.add
def stock(item_id: int) -> int:
    return item_id * 10


service = app.service(service_id="store")
service.use_dispatcher(dispatcher)


@service.endpoint("/items/{item_id}", method="GET")
def get_item(item_id: int, pricing: Pricing, stock) -> dict:
    log.info("item %s looked up", item_id)
    trace.get_current_span().add_event("looked up", {"item": item_id})
    return {"id": item_id, "price": pricing.price(item_id), "stock": stock}


@service.endpoint("/boom", method="GET")
def boom() -> dict:
    raise RuntimeError("the shop is on fire")


@dataclasses.dataclass
class Order:
    item_id: int
    quantity: int


orders = DuckDBTable(database="shop.duckdb", table="orders")


@app.collector("/orders", method="POST", sink=orders)
def take_order(order: Order) -> Order:
    return order


@dataclasses.dataclass
class Reading:
    sensor: str
    value: float


@app.consumer(source=LocalFileChangeStream("incoming"), sink=File("rows/readings.csv", FileFormat.CSV))
def read_file(event: LocalFileChangeEvent) -> list[Reading]:
    return [Reading(sensor=r["sensor"], value=float(r["value"])) for r in json.loads(event.blob)]
