"""The flow's last log lines, for the dashboard's Logs page: a bounded ring, fed by a logging
handler on the root logger while the dashboard is served, and handed live to open pages.

Records may come from any thread (sync handlers and dependencies run in the pool), so the ring
takes a lock and a page's queue is fed on its event loop. Access log lines are left out: the
Requests page shows every request with more.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from typing import Any

#: Lines kept; older ones fall out.
CAPACITY = 500
#: Lines a page may leave unread before newer ones are dropped for it.
BACKLOG = 1000
_SKIPPED = ("aiohttp.access",)

LogLine = dict[str, Any]


class LogRing(logging.Handler):
    def __init__(self, capacity: int = CAPACITY) -> None:
        super().__init__(logging.INFO)
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[LogLine]]] = []
        self._worker = os.getpid()  # made in the worker: its lines say so beside its siblings'

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_SKIPPED):
            return
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging's own handlers report it
            self.handleError(record)
            return
        if record.exc_info and record.exc_info[1] is not None:
            message += f"\n{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        line = {
            "time": record.created,
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            "worker": self._worker,
        }
        with self._lock:
            self._lines.append(line)
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            loop.call_soon_threadsafe(_offer, queue, line)

    def recent(self) -> list[LogLine]:
        """Every kept line, oldest first."""
        with self._lock:
            return list(self._lines)

    def subscribe(self) -> asyncio.Queue[LogLine]:
        """A queue that gets each line logged from now on (call from the event loop)."""
        queue: asyncio.Queue[LogLine] = asyncio.Queue()
        with self._lock:
            self._subscribers.append((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[LogLine]) -> None:
        with self._lock:
            self._subscribers = [(loop, q) for loop, q in self._subscribers if q is not queue]


def _offer(queue: asyncio.Queue[LogLine], line: LogLine) -> None:
    if queue.qsize() < BACKLOG:
        queue.put_nowait(line)
