"""BigQueryTable on the gcp target: the real client (gcloud-aio-bigquery) against a local
stand-in of BigQuery's insertAll endpoint (there is no BigQuery here)."""

import asyncio
import dataclasses
import datetime
from typing import Any

from aiohttp import web
from support import on_loopback

from bfctl.runtime.batching import Batcher
from bfctl.runtime.sinks import RowsRejected, row_converter, schema_from_type, writer_for
from buildflow.io.gcp import BigQueryDataset, BigQueryTable


@dataclasses.dataclass
class Event:
    user: str
    n: int
    at: datetime.datetime


class StandIn:
    """Accepts rows whose ``n`` is not negative, as a table with a rule would; records calls."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.stored: list[dict[str, Any]] = []

    async def insert_all(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append({"path": request.path, "body": body})
        rows = [r["json"] for r in body["rows"]]
        bad = [i for i, r in enumerate(rows) if int(r["n"]) < 0]
        if bad and not body["skipInvalidRows"]:
            errors = [
                {
                    "index": i,
                    "errors": [
                        {
                            "reason": "invalid" if i in bad else "stopped",
                            "message": "n must be >= 0" if i in bad else "",
                        }
                    ],
                }
                for i in range(len(rows))
            ]
            return web.json_response({"kind": "bigquery#tableDataInsertAllResponse", "insertErrors": errors})
        self.stored.extend(rows)
        return web.json_response({"kind": "bigquery#tableDataInsertAllResponse"})


async def _serve(stand_in: StandIn) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/bigquery/v2/projects/{p}/datasets/{d}/tables/{t}/insertAll", stand_in.insert_all)
    runner, root = await on_loopback(app)
    return runner, root + "/bigquery/v2"


def test_rows_stream_in_and_a_refused_row_fails_only_its_request() -> None:
    table = BigQueryTable(BigQueryDataset("my-project", "analytics"), "events")
    at = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)
    convert = row_converter(Event)
    stand_in = StandIn()

    async def run() -> list[object]:
        runner, api_root = await _serve(stand_in)
        outputs = {
            table.primitive_id(): {
                "project": "my-project",
                "dataset_id": "analytics",
                "table_id": table.table_id,  # as the gcp program exports it: project.dataset.table
                "api_root": api_root,
            }
        }
        batcher = Batcher(writer_for(table, schema_from_type(Event), outputs, None))
        await batcher.start()
        await batcher.submit([convert(Event("first", 1, at))])
        results = await asyncio.gather(
            *(batcher.submit([convert(Event(u, n, at))]) for u, n in [("a", 2), ("bad", -1), ("b", 3)]),
            return_exceptions=True,
        )
        await batcher.stop()
        await runner.cleanup()
        return results

    ok_a, bad, ok_b = asyncio.run(run())
    assert not isinstance(ok_a, BaseException) and not isinstance(ok_b, BaseException)  # their commits
    assert isinstance(bad, RowsRejected) and "n must be >= 0" in str(bad) and bad.indexes == [0]
    assert [r["user"] for r in stand_in.stored] == ["first", "a", "b"]
    assert stand_in.stored[0] == {
        "user": "first",
        "n": "1",
        "at": at.isoformat(),
    }  # INT64 as a string, as Google's client
    assert stand_in.calls[0]["path"] == "/bigquery/v2/projects/my-project/datasets/analytics/tables/events/insertAll"
    assert stand_in.calls[1]["body"]["skipInvalidRows"] is False and len(stand_in.calls[1]["body"]["rows"]) == 3
