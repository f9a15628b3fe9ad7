"""The consumers of a worker at work: ``num_concurrency`` pull loops each, one reader per loop.

A loop pulls a batch, hands it to its consumer, then acknowledges the messages whose rows are
durable and nacks the others (the source delivers those again after its ``backoff`` delay, and
the consumer's ``failures`` log says when); it pulls again only then, so a sink that falls behind holds the
loop back (``CompiledConsumer`` waits for room in the sink's queue). The acknowledgement alone
goes on while the next batch is pulled (a round trip off every batch's path: its rows are
durable already, and a lost ack only means a delivery again); one is in flight per loop at
most. While a batch is worked on longer than half its lease, the lease is extended.

Shutdown (``stop_pulling``, then ``stop``): no loop pulls again; the batches in flight are
finished, written and settled until the deadline, after which what is left is given back
(``release``: never acknowledged, delivered again at once rather than when its lease ends); then
the consumers' ``teardown()`` and the readers are closed (a reader gives back what a pull still
in flight brings).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from bfctl.runtime.consumers import CompiledConsumer
from bfctl.runtime.errors import StartupError, one_line
from bfctl.runtime.sources import Delivery, SourceReader, reader_for
from bfctl.runtime.tracing import messages
from bfctl.runtime.tracing.recorder import Recorder
from bfctl.runtime.tracing.spans import Trace

log = logging.getLogger("buildflow.runtime")

#: An acknowledgement, nack or lease extension of some messages, by their ack ids.
Settle = Callable[[Sequence[str]], Awaitable[None]]
#: Seconds a loop waits after a failed pull, doubling up to the second value.
_RETRY_FIRST, _RETRY_MOST = 0.5, 10.0


class PullLoop:
    def __init__(self, consumer: CompiledConsumer, reader: SourceReader, stopping: asyncio.Event) -> None:
        self.consumer = consumer
        self.reader = reader
        self._stopping = stopping
        #: The acknowledgement of the last batch, sent while the next one is pulled.
        self._acking: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            await self._pull_and_handle()
        finally:  # also when cancelled: the rows are durable, the ack is owed
            await self._acked()

    async def _pull_and_handle(self) -> None:
        retry = _RETRY_FIRST
        while not self._stopping.is_set():
            try:
                batch = await self.reader.pull(self.consumer.pull_size)
            except Exception as e:
                log.warning("%s: pulling from %s failed: %s", self.consumer.owner, self.reader.description, one_line(e))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), retry)
                retry = min(retry * 2, _RETRY_MOST)
                continue
            retry = _RETRY_FIRST
            if not batch:
                continue
            try:
                await self._handle(batch)
            except Exception:  # not the handler's (those fail their message): unsettled, they come again
                log.exception("%s: handling a batch of %d messages failed", self.consumer.owner, len(batch))

    async def _handle(self, batch: list[Delivery]) -> None:
        lease = self.reader.lease_seconds
        ack_ids = [d.ack_id for d in batch]
        keeper = asyncio.get_running_loop().create_task(self._keep_leases(ack_ids, lease)) if lease else None
        recorder = self.consumer.recorder
        traces = None
        if recorder is not None:
            traces = messages.begin(recorder, f"consumer {self.consumer.name}", self.reader.description, batch)
        try:
            done = await self.consumer.handle(batch, traces)
        except asyncio.CancelledError:  # the grace period ended: others get these now, not after their lease
            await self._settle(self.reader.release, ack_ids, "giving back")
            raise
        finally:
            if keeper is not None:
                keeper.cancel()
        handled = [ack_id for ack_id, ok in zip(ack_ids, done, strict=True) if ok]
        failed = [ack_id for ack_id, ok in zip(ack_ids, done, strict=True) if not ok]
        self.consumer.failures.handled(d for d, ok in zip(batch, done, strict=True) if ok)
        ack: Settle = self.reader.ack
        nack: Settle = self.reader.nack
        if traces is not None:
            ack, nack = _traced(recorder, traces, done, True, ack), _traced(recorder, traces, done, False, nack)
        if handled:
            await self._acked()
            self._acking = asyncio.get_running_loop().create_task(self._settle(ack, handled, "acknowledging"))
        if failed:
            await self._settle(nack, failed, "nacking")

    async def _acked(self) -> None:
        """Wait for the last batch's acknowledgement (``_settle`` logs its failure)."""
        acking, self._acking = self._acking, None
        if acking is not None:
            await asyncio.shield(acking)

    async def _keep_leases(self, ack_ids: list[str], lease: float) -> None:
        while True:
            await asyncio.sleep(lease / 2)
            await self._settle(lambda ids: self.reader.extend(ids, lease), ack_ids, "extending the lease of")

    async def _settle(self, call: Callable[[Sequence[str]], Awaitable[None]], ack_ids: list[str], what: str) -> None:
        try:
            await call(ack_ids)
        except Exception as e:  # the source delivers them again: at least once, never lost
            log.warning("%s: %s %d messages failed: %s", self.consumer.owner, what, len(ack_ids), one_line(e))


def _traced(
    recorder: Recorder | None,
    traces: list[Trace | None],
    done: list[bool],
    ok: bool,
    settle: Settle,
) -> Settle:
    """``settle`` as the last span of the traces of the messages it settles (those ``done`` says ``ok``)."""
    assert recorder is not None
    mine = [trace for trace, outcome in zip(traces, done, strict=True) if outcome is ok]

    def traced(ack_ids: Sequence[str]) -> Awaitable[None]:
        return messages.settled(recorder, mine, "ack" if ok else "nack", lambda: settle(ack_ids))

    return traced


class ConsumerGroup:
    """The pull loops of every consumer in one worker."""

    def __init__(self, consumers: list[CompiledConsumer], outputs: Mapping[str, Any], project_dir: Path) -> None:
        self.consumers = consumers
        self._outputs = outputs
        self._project_dir = project_dir
        self._stopping = asyncio.Event()
        self._deadline: float | None = None
        self._loops: list[PullLoop] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, loop: asyncio.AbstractEventLoop, pool: Executor, recorder: Recorder | None = None) -> None:
        """Make every reader first (a source not applied stops the worker before anything runs),
        then set the consumers up (traced when ``recorder`` is given), open the readers and start
        pulling: not at all when ``stop_pulling`` came first (a worker told to stop while starting)."""
        planned = [
            PullLoop(consumer, self._reader(consumer), self._stopping)
            for consumer in self.consumers
            for _ in range(consumer.options.num_concurrency)
        ]
        for pull_loop in planned:  # one source per consumer: its loops' readers back off alike
            pull_loop.consumer.failures.backoff = pull_loop.reader.backoff
        for consumer in self.consumers:
            await consumer.start(loop, pool, recorder)
        for pull_loop in planned:
            try:
                await pull_loop.reader.open()
            except Exception as e:
                raise StartupError(
                    f"{pull_loop.consumer.owner}: opening {pull_loop.reader.description} failed: {one_line(e)}"
                ) from e
            self._loops.append(pull_loop)
        self._tasks = [
            loop.create_task(p.run(), name=f"pull {p.consumer.name} #{i}") for i, p in enumerate(self._loops)
        ]

    def _reader(self, consumer: CompiledConsumer) -> SourceReader:
        try:
            return reader_for(consumer.consumer.source_primitive, self._outputs, self._project_dir)
        except (LookupError, NotImplementedError, ValueError) as e:
            raise StartupError(f"{consumer.owner}: {e}") from None

    def stop_pulling(self, grace: float | None = None) -> None:
        """No loop pulls again; what is in flight gets ``grace`` seconds (None: as long as it takes)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if grace is not None:
            self._deadline = asyncio.get_running_loop().time() + grace

    async def stop(self) -> None:
        """Finish what is in flight (until the deadline), tear the consumers down, close the readers."""
        self.stop_pulling()
        if self._tasks:
            timeout = None if self._deadline is None else max(0.0, self._deadline - asyncio.get_running_loop().time())
            _, late = await asyncio.wait(self._tasks, timeout=timeout)
            for task in late:
                task.cancel()
            if late:  # their batches were given back: delivered again at once
                log.warning("%d pull loops were still busy at the end of the grace period", len(late))
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for consumer in self.consumers:
            await consumer.stop()
        for pull_loop in self._loops:
            try:
                await pull_loop.reader.close()
            except Exception as e:
                log.warning("closing %s failed: %s", pull_loop.reader.description, one_line(e))
        self._loops = []
        self._stopping = asyncio.Event()  # a next ``start`` pulls again
        self._deadline = None
