import dataclasses

from buildflow import Flow
from buildflow.io.gcp import BigQueryDataset, BigQueryTable, GCPPubSubTopic

app = Flow()

dataset = BigQueryDataset(project_id="my-project", dataset_name="shop")
orders = BigQueryTable(dataset, table_name="orders")
placed = GCPPubSubTopic(project_id="my-project", topic_name="orders-placed")
app.manage(dataset, orders)  # the topic is not managed: on gcp it must already exist


@dataclasses.dataclass
class Order:
    id: int
    total: float


@app.collector("/orders", method="POST", sink=orders)
def record(order: Order) -> Order:
    return order


@app.collector("/announce", method="POST", sink=placed)
def announce(order: Order) -> Order:
    return order
