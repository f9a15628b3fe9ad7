"""DuckDB sinks as BuildFlow projects used them: nested dataclasses stored as STRUCT and LIST
columns, and the table read with ``duckdb.connect`` while the flow writes to it, from an
endpoint of the flow and from another process."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest
from support import Server, run_bfctl, serving, wait_until, write

from bfctl.runtime.sinks import SinkSchemaError, schema_from_type, writer_for
from buildflow.io.duckdb import DuckDBTable
from buildflow.storage.duckdb_access import shared_database

FLOW = """
import dataclasses

import duckdb

from buildflow import Flow
from buildflow.io.duckdb import DuckDBTable


@dataclasses.dataclass
class Item:
    sku: str
    qty: int


@dataclasses.dataclass
class Address:
    city: str
    lines: list[str]


@dataclasses.dataclass
class Order:
    order_id: int
    items: list[Item]
    ship_to: Address
    tags: list[str]


app = Flow()
service = app.service()
orders = DuckDBTable(database="shop.duckdb", table="orders")


@app.collector("/orders", method="POST", sink=orders)
def collect(order: Order) -> Order:
    return order


@service.endpoint("/orders/count", method="GET")
def count() -> dict:
    connection = duckdb.connect(orders.database, read_only=True)
    (n,) = connection.execute("SELECT count(*) FROM orders").fetchone()
    return {"count": n}
"""

ITEMS_TYPE = "STRUCT(sku VARCHAR, qty BIGINT)[]"


def _order(order_id: int) -> bytes:
    return json.dumps(
        {
            "order_id": order_id,
            "items": [{"sku": "apple", "qty": order_id}, {"sku": "pear", "qty": 1}],
            "ship_to": {"city": "Oslo", "lines": ["Storgata 1", "3rd floor"]},
            "tags": ["gift"],
        }
    ).encode()


SERVE = ["main:app", "--apply", "--port", "0", "--no-access-log"]


def _project(tmp_path: Path) -> Path:
    write(tmp_path / "main.py", FLOW)
    return tmp_path


def test_nested_dataclasses_are_struct_columns_read_back_as_lists_of_dicts(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    project = _project(tmp_path)
    with serving(SERVE, project, bfctl_env) as server:
        for order_id in (1, 2):
            assert server.call("POST", "/orders", _order(order_id))[0] == 200
        assert server.stop() == 0

    connection = duckdb.connect(str(project / "shop.duckdb"))
    types = dict(connection.execute("SELECT column_name, data_type FROM information_schema.columns").fetchall())
    assert types == {
        "order_id": "BIGINT",
        "items": ITEMS_TYPE,
        "ship_to": "STRUCT(city VARCHAR, lines VARCHAR[])",
        "tags": "VARCHAR[]",
    }
    rows = connection.execute("SELECT * FROM orders ORDER BY order_id").fetchall()
    assert rows[1] == (
        2,
        [{"sku": "apple", "qty": 2}, {"sku": "pear", "qty": 1}],
        {"city": "Oslo", "lines": ["Storgata 1", "3rd floor"]},
        ["gift"],
    )
    (total,) = connection.execute("SELECT sum(i.qty) FROM (SELECT unnest(items) AS i FROM orders)").fetchone()
    assert total == 5  # SQL sees the structs too, not JSON text


def _failures(server: Server) -> str:
    """What the server logged about writes it could not make (its output, once stopped)."""
    server.stop()
    return "\n".join(line for line in server.output.splitlines() if "rror" in line or "WARN" in line)[-4000:]


def _post_orders(server: Server, first: int, count: int) -> list[int]:
    return [server.call("POST", "/orders", _order(n))[0] for n in range(first, first + count)]


def test_an_endpoint_reads_the_table_read_only_while_collectors_write(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    with serving(SERVE, _project(tmp_path), bfctl_env) as server, ThreadPoolExecutor(8) as pool:
        posts = [pool.submit(_post_orders, server, 1000 * w, 40) for w in range(4)]
        reads = [pool.submit(lambda: [server.call("GET", "/orders/count") for _ in range(40)]) for _ in range(4)]
        post_statuses = [status for future in posts for status in future.result()]
        answers = [answer for future in reads for answer in future.result()]
        assert post_statuses == [200] * 160, _failures(server)
        assert [status for status, _ in answers] == [200] * 160, [a for a in answers if a[0] != 200][:3]
        assert all(0 <= json.loads(body)["count"] <= 160 for _, body in answers)
        status, body = server.call("GET", "/orders/count")
        assert (status, json.loads(body)) == (200, {"count": 160})


def test_another_process_reads_between_the_flows_writes(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    """This test's process reads as a user's script would: DuckDB lets one process write a file
    at a time, so a reader retries while the flow has it, and gets in between its writes."""
    project = _project(tmp_path)
    counts: list[int] = []
    posting = threading.Event()
    posting.set()

    def read_count() -> bool:
        """the reader got in five times while the flow kept writing"""
        try:
            with duckdb.connect(str(project / "shop.duckdb"), read_only=True) as connection:
                counts.append(connection.execute("SELECT count(*) FROM orders").fetchone()[0])
        except duckdb.IOException:  # the flow has the file
            pass
        return len(counts) >= 5

    def post_until_read(server: Server, first: int) -> list[int]:
        statuses = []
        while posting.is_set():
            statuses += _post_orders(server, first + len(statuses), 1)
        return statuses

    with serving(SERVE, project, bfctl_env) as server, ThreadPoolExecutor(4) as pool:
        writers = [pool.submit(post_until_read, server, 10_000 * w) for w in range(4)]
        try:
            wait_until(read_count)
            assert all(not w.done() for w in writers)  # every read happened while the flow was writing
        finally:
            posting.clear()
        statuses = [status for w in writers for status in w.result()]
        assert set(statuses) == {200}
        assert counts == sorted(counts)
        status, body = server.call("GET", "/orders/count")
        assert (status, json.loads(body)) == (200, {"count": len(statuses)})


def test_a_json_column_of_an_earlier_version_stops_serving_with_the_statement_that_converts_it(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    project = _project(tmp_path)
    with duckdb.connect(str(project / "shop.duckdb")) as connection:
        connection.execute("CREATE TABLE orders (order_id BIGINT NOT NULL, items JSON, ship_to JSON, tags VARCHAR[])")
        connection.execute(
            """INSERT INTO orders VALUES (7, '[{"sku": "fig", "qty": 3}]', '{"city": "Rome", "lines": []}', [])"""
        )
    code, out = run_bfctl(["serve", *SERVE], project, bfctl_env)
    assert code == 1 and "column items is JSON" in out and "Traceback" not in out, out
    statements = list(dict.fromkeys(part for part in out.split("`")[1::2] if part.startswith("ALTER TABLE")))
    assert [s.split(" SET DATA TYPE ")[0] for s in statements] == [
        'ALTER TABLE "orders" ALTER "items"',
        'ALTER TABLE "orders" ALTER "ship_to"',
    ]

    with duckdb.connect(str(project / "shop.duckdb")) as connection:
        for statement in statements:
            connection.execute(statement)
    with serving(SERVE, project, bfctl_env) as server:
        assert server.call("POST", "/orders", _order(8))[0] == 200
        assert server.stop() == 0
    with duckdb.connect(str(project / "shop.duckdb")) as connection:
        rows = connection.execute("SELECT order_id, items, ship_to FROM orders ORDER BY order_id").fetchall()
    assert rows[0] == (7, [{"sku": "fig", "qty": 3}], {"city": "Rome", "lines": []})
    assert rows[1][1] == [{"sku": "apple", "qty": 8}, {"sku": "pear", "qty": 1}]


@dataclasses.dataclass
class Line:
    sku: str
    qty: int


@dataclasses.dataclass
class Basket:
    lines: list[Line]


def test_a_writer_started_on_a_json_column_of_an_earlier_version_refuses_to_start(tmp_path: Path) -> None:
    """Serving without apply: the writer finds the old column itself, before any row is written."""
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE baskets (lines JSON)")
    writer = writer_for(DuckDBTable(str(path), "baskets"), schema_from_type(Basket), {}, tmp_path)
    wanted = r"column lines is JSON, but its rows need STRUCT\(sku VARCHAR, qty BIGINT\)\[\]"
    with pytest.raises(SinkSchemaError, match=wanted):
        asyncio.run(writer.start())
    with duckdb.connect(str(path)) as connection:  # the file was let go
        assert connection.execute("SELECT count(*) FROM baskets").fetchone() == (0,)


def test_a_reader_still_closing_when_the_file_is_let_go_does_not_fail_the_next_write(tmp_path: Path) -> None:
    """A user's cursor is counted out when its finalizer runs, which is before DuckDB has closed
    it: the file can be detached while the cursor's open result still holds it. Attaching again
    then meets the file handle conflict for that moment; it is waited out, not a failed write."""
    database = shared_database(tmp_path / "race.duckdb")
    with database.connection() as connection:
        connection.execute("CREATE TABLE t AS SELECT range AS n FROM range(10000)")
    reader = database._enter()  # as user_connection hands out, without its finalizer
    reader.execute("SELECT * FROM t").fetchone()  # a result left open, as an endpoint's fetchone leaves it
    database._leave()  # what the finalizer does first
    database.release()  # the closer lets the file go
    closing = threading.Timer(0.05, reader.close)  # DuckDB closes the cursor a moment later
    closing.start()
    try:
        with database.connection() as connection:
            assert connection.execute("SELECT count(*) FROM t").fetchone() == (10000,)
    finally:
        closing.join()
        database.release()
