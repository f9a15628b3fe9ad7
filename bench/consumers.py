"""``make bench``'s consumer section: messages/s drained from a backlog into PostgreSQL.

Our consumer (``bfctl serve``) against a hand-written pull → COPY → ack loop with the same
Pub/Sub client on a second subscription of the same topic, both on Google's emulator, in turn,
twice, the better run of each kept; then our consumer through the durable local log. A backlog
of ``MESSAGES`` is published first; the rate is counted from the first stored row to the last,
so neither start-up nor publishing is in it, by the same poll of the table for both.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.servers import ROOT, bfctl_serve, serving

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "20000"))
_BFCTL = [sys.executable, "-m", "bfctl"]
#: The longest a backlog may take to drain (at a tenth of the usual rate: a stuck drain fails
#: the section with its count instead of holding the run).
_DRAIN_TIMEOUT = 180.0


def _outputs(project: Path) -> dict[str, Any]:
    from bfctl.providers.state import StateStore

    return {k: r.outputs for k, r in StateStore(project, "local", "dev").load().resources.items()}


def _dsn(project: Path) -> dict[str, Any]:
    out = _outputs(project)["bench-project:bench-db.bench"]
    password = next((project / ".buildflow").rglob("admin-password")).read_text().strip()
    return {
        "host": out["host"],
        "port": out["port"],
        "dbname": "bench",
        "user": "buildflow_admin",
        "password": password,
    }


def _drain_rate(project: Path, table: str, target: int, start: Callable[[], None] = lambda: None) -> float:
    """Rows/s from the first new row to ``target`` rows, polled every 20 ms on one connection
    (a connection per poll costs the database a backend each time, slowing what is measured);
    ``start`` starts the drain once the rows there before are counted."""
    import psycopg

    def count(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute(f'select count(*) from "{table}"').fetchone()  # noqa: S608 - the bench's own table
        return int(row[0]) if row else 0

    with psycopg.connect(**_dsn(project), autocommit=True) as conn:
        start_count = count(conn)
        start()
        deadline = time.monotonic() + _DRAIN_TIMEOUT
        began: tuple[float, int] | None = None
        while True:
            now, stored = time.monotonic(), count(conn)
            if began is None and stored > start_count:
                began = (now, stored)
            if stored >= target:
                assert began is not None
                return (stored - began[1]) / max(now - began[0], 1e-6) if now > began[0] else float("inf")
            if now > deadline:
                raise RuntimeError(f"{table}: {stored} of {target} rows after {_DRAIN_TIMEOUT} s")
            time.sleep(0.02)


def _payloads(n: int) -> list[bytes]:
    return [json.dumps({"user": f"user-{i}", "kind": "click", "n": i}).encode() for i in range(n)]


async def _publish(topic: str, api_root: str | None, log: Path | None) -> None:
    payloads = _payloads(MESSAGES)
    if log is not None:
        from bfctl.runtime.sinks.pubsub import TopicLog

        publisher: Any = TopicLog(log)
        await publisher.open()
        for i in range(0, len(payloads), 1000):
            await publisher.publish(payloads[i : i + 1000])
        await publisher.close()
        return
    from gcloud.aio.pubsub import PublisherClient, PubsubMessage

    async with PublisherClient(api_root=api_root) as client:
        for i in range(0, len(payloads), 1000):
            await client.publish(topic, [PubsubMessage(p) for p in payloads[i : i + 1000]])


async def _by_hand(subscription: str, api_root: str, dsn: dict[str, Any], messages: int) -> None:
    """Pull up to 1000, COPY them into the table, ack, until ``messages`` are stored."""
    import asyncpg
    from gcloud.aio.pubsub import SubscriberClient

    conn = await asyncpg.connect(
        host=dsn["host"], port=dsn["port"], database=dsn["dbname"], user=dsn["user"], password=dsn["password"]
    )
    stored = 0
    async with SubscriberClient(api_root=api_root) as client:
        while stored < messages:
            pulled = await client.pull(subscription, 1000, timeout=30)
            if not pulled:
                continue
            rows = [tuple(json.loads(m.data or b"{}").values()) for m in pulled]
            await conn.copy_records_to_table("hand_events", records=rows, columns=["user", "kind", "n"])
            await client.acknowledge(subscription, [m.ack_id for m in pulled])
            stored += len(rows)
    await conn.close()


def _hand_rate(project: Path, subscription: str, api_root: str, target: int) -> float:
    """The hand-written loop in a thread of its own, its rate measured as ours is (``_drain_rate``)."""
    loop_thread = threading.Thread(
        target=lambda: asyncio.run(_by_hand(subscription, api_root, _dsn(project), MESSAGES)), daemon=True
    )
    rate = _drain_rate(project, "hand_events", target, loop_thread.start)
    loop_thread.join()
    return rate


@contextmanager
def _applied(workdir: Path, mode: str) -> Iterator[Path]:
    project = workdir / f"consume-{mode}"
    project.mkdir()
    shutil.copy(ROOT / "bench" / "apps" / "consume.py", project / "consume.py")
    saved = os.environ.get("BFCTL_LOCAL_PUBSUB")
    os.environ["BFCTL_LOCAL_PUBSUB"] = mode  # apply, serve and destroy see the same mode
    try:
        subprocess.run(
            [*_BFCTL, "apply", "consume.py:app", "--yes"], cwd=project, stdout=subprocess.DEVNULL, check=True
        )
        try:
            yield project
        finally:
            subprocess.run([*_BFCTL, "destroy", "--yes"], cwd=project, stdout=subprocess.DEVNULL, check=True)
    finally:
        if saved is None:
            os.environ.pop("BFCTL_LOCAL_PUBSUB")
        else:
            os.environ["BFCTL_LOCAL_PUBSUB"] = saved


def _ours(project: Path, target: int) -> float:
    with serving(bfctl_serve("consume.py:app"), project):
        return _drain_rate(project, "events", target)


def consumers(workdir: Path) -> dict[str, Any]:
    from bfctl.providers.local.pubsub import emulator_available

    rates: dict[str, float] = {}
    if emulator_available():
        with _applied(workdir, "emulator") as project:
            out = _outputs(project)
            topic = "projects/bench-project/topics/bench-events"
            api_root = out[topic]["api_root"]
            mine, hand = [], []
            for round_ in range(1, 3):
                asyncio.run(_publish(topic, api_root, None))
                hand.append(
                    _hand_rate(project, out["bench-project/bench-by-hand"]["subscription"], api_root, MESSAGES * round_)
                )
                mine.append(_ours(project, MESSAGES * round_))
        rates["consumer, emulator → PostgreSQL"] = max(mine)
        rates["hand-written pull → COPY → ack, emulator"] = max(hand)
    with _applied(workdir, "log") as project:
        log = Path(_outputs(project)["projects/bench-project/topics/bench-events"]["path"])
        asyncio.run(_publish("", None, log))
        rates["consumer, durable local log → PostgreSQL"] = _ours(project, MESSAGES)
    ratios = {}
    if "consumer, emulator → PostgreSQL" in rates:
        ratios["consumer vs hand-written loop, emulator"] = (
            rates["consumer, emulator → PostgreSQL"] / rates["hand-written pull → COPY → ack, emulator"]
        )
        ratios["durable log vs emulator, consumer"] = (
            rates["consumer, durable local log → PostgreSQL"] / rates["consumer, emulator → PostgreSQL"]
        )
    return {"messages": MESSAGES, "messages_per_s": rates, "ratios": ratios}
