"""How a message that failed comes again: later each time, and not forever where the source can
set it aside.

Delivering a failed message again at once makes one that always fails (a file the handler cannot
read, rows the sink refuses) spin through thousands of deliveries and log lines a second. So a
source waits ``Backoff.delay(attempt)`` before the next delivery, doubling from
``BFCTL_RETRY_BASE_SECONDS`` (1 s) up to ``BFCTL_RETRY_MAX_SECONDS`` (60 s), and meanwhile goes
on delivering its other messages. Where the source can put a message aside (a file change
stream) or dead-letter it (a subscription with a dead-letter topic), ``max_attempts`` says after
how many deliveries; otherwise it is retried, at the longest delay, as long as it lives.

``FailureLog`` keeps a consumer's log readable: one line the first time a message fails, then a
count of further failures at most every ``SUMMARY_SECONDS``, and a line when one is given up.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bfctl.runtime.sources.base import Delivery

log = logging.getLogger("buildflow.runtime")

BASE_VARIABLE = "BFCTL_RETRY_BASE_SECONDS"
MAX_VARIABLE = "BFCTL_RETRY_MAX_SECONDS"
#: The first wait before a failed message comes again, and the longest.
BASE_SECONDS, MAX_SECONDS = 1.0, 60.0
#: The shortest time between two lines counting repeated failures of one consumer.
SUMMARY_SECONDS = 60.0
#: Failing messages remembered per consumer (so each is logged in full once).
_REMEMBERED = 10_000


def _seconds(variable: str, default: float) -> float:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ValueError(f"{variable} must be a positive number of seconds, got {raw!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Backoff:
    """When a source delivers a failed message again, and when it stops."""

    base: float = BASE_SECONDS
    most: float = MAX_SECONDS
    #: Deliveries after which the source gives the message up (None: never).
    max_attempts: int | None = None
    #: What giving up means on this source, for the log.
    gives_up: str = "set aside"

    @classmethod
    def from_env(cls, max_attempts: int | None = None, gives_up: str = "set aside") -> Backoff:
        """Raises ``ValueError`` for a setting that is not a positive number."""
        base, most = _seconds(BASE_VARIABLE, BASE_SECONDS), _seconds(MAX_VARIABLE, MAX_SECONDS)
        return cls(base, max(base, most), max_attempts, gives_up)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th delivery failed (none after the last: the
        source gives the message up at once)."""
        if self.exhausted(attempt):
            return 0.0
        return min(self.most, self.base * 2.0 ** min(max(attempt, 1) - 1, 64))

    def exhausted(self, attempt: int | None) -> bool:
        """The ``attempt``-th delivery was the last."""
        return self.max_attempts is not None and attempt is not None and attempt >= self.max_attempts


class FailureLog:
    """A consumer's failed messages, logged and counted (``set_aside``: given up, for the metrics).

    ``backoff`` is the source's, given by the pull loops; without it a message is said to be
    redelivered."""

    def __init__(self, owner: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.owner = owner
        self.backoff: Backoff | None = None
        self.set_aside = 0
        self._clock = clock
        self._failing: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._repeats = 0
        self._repeated: set[str] = set()
        self._latest = ""
        self._since = clock()

    def failed(self, delivery: Delivery, reason: str) -> None:
        key = delivery.key or delivery.ack_id
        attempt = delivery.delivery_attempt
        named = f"{delivery.key}, " if delivery.key else ""
        backoff = self.backoff
        if backoff is not None and backoff.exhausted(attempt):
            self.set_aside += 1
            self._failing.pop(key, None)
            log.warning(
                "%s: a message failed (%sdelivery %s, the last): %s, not delivered again: %s",
                self.owner,
                named,
                attempt,
                backoff.gives_up,
                reason,
            )
            return
        if key in self._failing:
            self._failing.move_to_end(key)
            self._repeats += 1
            self._repeated.add(key)
            self._latest = reason
            self._summarize()
            return
        self._failing[key] = None
        if len(self._failing) > _REMEMBERED:
            self._failing.popitem(last=False)
        detail = f" ({named}delivery {attempt})" if attempt else (f" ({delivery.key})" if delivery.key else "")
        if backoff is None:
            then = "will be redelivered"
        elif attempt:
            then = f"will be retried in {backoff.delay(attempt):g}s"
        else:
            then = "will be retried later"
        log.warning("%s: a message failed%s and %s: %s", self.owner, detail, then, reason)
        self._summarize()

    def handled(self, deliveries: Iterable[Delivery]) -> None:
        """These succeeded: a later failure of them is news again."""
        if self._failing:
            for delivery in deliveries:
                self._failing.pop(delivery.key or delivery.ack_id, None)

    def _summarize(self) -> None:
        now = self._clock()
        if now - self._since < SUMMARY_SECONDS:
            return
        if self._repeats:
            log.warning(
                "%s: %d more failed deliveries of %d messages in the last %.0fs, retried later each time; "
                "the latest: %s",
                self.owner,
                self._repeats,
                len(self._repeated),
                now - self._since,
                self._latest,
            )
        self._repeats, self._repeated, self._since = 0, set(), now
