"""Rate limits for the front door: token buckets, and log lines that summarise floods.

Invariants:
- `TokenBucket` never holds more than ``burst`` tokens and refills at ``rate`` per second
  (monotonic clock); `take` never blocks, it says yes or no.
- `SummaryLog` writes the lines of each kind as they happen while that kind's token bucket
  (``burst`` lines, ``rate`` more per second) allows, counts the rest, and writes one summary
  line with the counts at the end of each ``interval`` in which any were held back; so a
  flood of N refusals in T seconds costs about burst + rate * T + T / interval lines, not N.
  Loop thread only (it schedules its summary with ``loop.call_later``).
"""

from __future__ import annotations

import logging
from time import monotonic
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

__all__ = ["SummaryLog", "TokenBucket"]


class TokenBucket:
    """``burst`` tokens at most, ``rate`` new ones per second."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float | None = None) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = monotonic() if now is None else now

    def take(self, now: float | None = None) -> bool:
        """Take one token if there is one."""
        now = monotonic() if now is None else now
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._stamp) * self.rate)
        self._stamp = max(now, self._stamp)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def full(self, now: float | None = None) -> bool:
        """True when the bucket has refilled completely (it can be forgotten)."""
        now = monotonic() if now is None else now
        return self._tokens + max(0.0, now - self._stamp) * self.rate >= self.burst


class SummaryLog:
    """Log lines of a few kinds, each rate-limited, plus a summary of the lines held back."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        logger: logging.Logger,
        interval: float = 10.0,
        level: int = logging.WARNING,
        burst: float = 20.0,
        rate: float = 0.5,
    ) -> None:
        self.loop = loop
        self.logger = logger
        self.interval = interval
        self.level = level
        self.burst = burst
        self.rate = rate
        self._buckets: dict[str, TokenBucket] = {}  # kind -> lines it may still write
        self._suppressed: dict[str, int] = {}  # kind -> lines held back in this interval
        self._timer: asyncio.TimerHandle | None = None

    def log(self, kind: str, message: str, *args: object) -> None:
        """Log ``message % args`` now, or count it under ``kind`` for the interval's summary."""
        bucket = self._buckets.get(kind)
        if bucket is None:
            bucket = self._buckets[kind] = TokenBucket(self.rate, self.burst)
        if bucket.take():
            self.logger.log(self.level, message, *args)
            return
        self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
        if self._timer is None:
            self._timer = self.loop.call_later(self.interval, self._summarise)

    def _summarise(self) -> None:
        self._timer = None
        counts, self._suppressed = self._suppressed, {}
        text = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        line = "in the last %.0f s, %s more (not logged one by one)"
        self.logger.log(self.level, line, self.interval, text)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
