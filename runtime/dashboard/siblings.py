"""The other workers' part of the dashboard, when a flow is served by several forked workers.

A page's request lands on one worker, and each worker keeps only its own traces, log lines and
counters. So each worker also answers its siblings on a private port of its own (loopback only,
ephemeral), named in a file of its run's folder under ``.buildflow/workers/`` (one folder per
supervisor process), and the worker that answers a page asks the others for their part and merges.
Every call to a sibling is time-bound and a sibling that fails is skipped: a worker that died
leaves the page whole, only without its part. A single worker opens no port and asks nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger("buildflow.dashboard")

#: The folder of every run's folder, in the project's directory.
FOLDER = Path(".buildflow") / "workers"
#: Seconds a sibling has to answer (for its event stream: to connect).
WAIT = 1.0
_LOOPBACK = "127.0.0.1"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process that took the number
        return True
    return True


def _forget_ended_runs(root: Path) -> None:
    """Removes the folders of runs whose supervisor is gone (killed before its workers cleaned up)."""
    for folder in root.iterdir():
        if folder.name.isdigit() and not _alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)


class Siblings:
    """This worker's private port, and what the other workers of its run answer on theirs."""

    def __init__(self, project_dir: Path) -> None:
        self._root = project_dir / FOLDER
        self._folder = self._root / str(os.getppid())  # the supervisor: the same for every worker
        self._file: Path | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self, own_part: web.Application) -> None:
        """Serves ``own_part`` on a private loopback port and names the port for the siblings."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT))
        self._runner = runner = web.AppRunner(own_part, handle_signals=False, access_log=None, shutdown_timeout=WAIT)
        await runner.setup()
        await web.TCPSite(runner, _LOOPBACK, 0).start()
        port = runner.addresses[0][1]
        file = self._folder / str(os.getpid())
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            _forget_ended_runs(self._root)
            written = file.with_suffix(".new")  # renamed once whole: a sibling never reads half a number
            written.write_text(str(port))
            written.replace(file)
        except OSError as e:
            log.warning("the dashboard's pages served by other workers will not show this one's part: %s", e)
            return
        self._file = file

    async def stop(self) -> None:
        if self._file is not None:
            self._file.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # the last worker out removes the run's folder
                self._folder.rmdir()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def ports(self) -> dict[int, int]:
        """The private port of each other live worker of the run, by process id."""
        found: dict[int, int] = {}
        try:
            files = list(self._folder.iterdir())
        except OSError:  # no sibling has named its port yet
            return found
        for file in files:
            if not file.name.isdigit() or (pid := int(file.name)) == os.getpid() or not _alive(pid):
                continue
            with contextlib.suppress(OSError, ValueError):
                found[pid] = int(file.read_text())
        return found

    async def ask(self, path: str) -> list[Any]:
        """Each sibling's answer to ``path`` (JSON), leaving out those that fail, refuse or are slow."""
        answers = await asyncio.gather(*(self._get(port, path) for port in self.ports().values()))
        return [answer for answer in answers if answer is not None]

    async def _get(self, port: int, path: str) -> Any:
        assert self._session is not None
        try:
            async with self._session.get(f"http://{_LOOPBACK}:{port}{path}") as response:
                return await response.json() if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def events(self, port: int) -> AsyncIterator[tuple[str, Any]]:
        """A sibling's own event stream, event by event, until it ends or fails."""
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=WAIT)
        try:
            async with self._session.get(f"http://{_LOOPBACK}:{port}/events", timeout=timeout) as response:
                if response.status != 200:
                    return
                buffer = b""
                async for chunk in response.content.iter_any():
                    *whole, buffer = (buffer + chunk).split(b"\n\n")
                    for event in whole:
                        name, _, data = event.partition(b"\ndata: ")
                        yield name.removeprefix(b"event: ").decode(), json.loads(data)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return


class Relay:
    """For one open page: what every sibling's event stream brought since it was last taken
    (traces and log lines, the newest ``capacity`` of each), and each sibling's latest figures.
    Siblings are followed from the first ``follow`` on, and those that start later from the next."""

    def __init__(self, siblings: Siblings, capacity: int) -> None:
        self._siblings = siblings
        self._capacity = capacity
        self._news: dict[str, deque[Any]] = {}
        self._following: dict[int, asyncio.Task[None]] = {}
        #: Each followed sibling's last ``data`` event.
        self.figures: dict[int, Any] = {}

    def follow(self) -> None:
        """Starts following each sibling not followed yet (or whose stream ended)."""
        for pid, port in self._siblings.ports().items():
            task = self._following.get(pid)
            if task is None or task.done():
                self._following[pid] = asyncio.create_task(self._read(pid, port), name=f"dashboard relay {pid}")

    async def _read(self, pid: int, port: int) -> None:
        try:
            async for name, payload in self._siblings.events(port):
                if name == "data":
                    self.figures[pid] = payload
                else:
                    self._news.setdefault(name, deque(maxlen=self._capacity)).extend(payload)
        finally:
            self.figures.pop(pid, None)

    def take(self, name: str) -> list[Any]:
        """What came of event ``name`` since the last take, oldest first."""
        news = self._news.pop(name, None)
        return list(news) if news else []

    async def close(self) -> None:
        for task in self._following.values():
            task.cancel()
        for task in self._following.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
