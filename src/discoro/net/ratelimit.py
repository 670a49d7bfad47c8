"""Rate limits for the front door: token buckets, and log lines that summarise floods.

Invariants:
- `TokenBucket` never holds more than ``burst`` tokens and refills at ``rate`` per second
  (monotonic clock); `take` never blocks, it says yes or no.
- `SummaryLog` writes at most one line per kind as things happen in an interval of
  ``interval`` seconds (the first), then one summary line with the count of the rest when the
  interval ends; so a flood of N refusals costs O(duration / interval) lines, not N.
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

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = monotonic()

    def take(self, now: float | None = None) -> bool:
        """Take one token if there is one."""
        now = monotonic() if now is None else now
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def full(self, now: float | None = None) -> bool:
        """True when the bucket has refilled completely (it can be forgotten)."""
        now = monotonic() if now is None else now
        return self._tokens + (now - self._stamp) * self.rate >= self.burst


class SummaryLog:
    """Log lines of a few kinds, each at most once per interval plus a summary of the rest."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        logger: logging.Logger,
        interval: float = 10.0,
        level: int = logging.WARNING,
    ) -> None:
        self.loop = loop
        self.logger = logger
        self.interval = interval
        self.level = level
        self._suppressed: dict[str, int] = {}  # kind -> lines held back in this interval
        self._timer: asyncio.TimerHandle | None = None

    def log(self, kind: str, message: str, *args: object) -> None:
        """Log ``message % args`` now, or count it under ``kind`` for the interval's summary."""
        if kind in self._suppressed:
            self._suppressed[kind] += 1
            return
        self._suppressed[kind] = 0
        self.logger.log(self.level, message, *args)
        if self._timer is None:
            self._timer = self.loop.call_later(self.interval, self._summarise)

    def _summarise(self) -> None:
        self._timer = None
        counts = {kind: n for kind, n in self._suppressed.items() if n}
        self._suppressed.clear()
        if counts:
            text = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
            self.logger.log(
                self.level,
                "in the last %.0f s, %s more (not logged one by one)",
                self.interval,
                text,
            )
            # keep summarising while the flood lasts: the next interval starts quiet
            for kind in counts:
                self._suppressed[kind] = 0
            self._timer = self.loop.call_later(self.interval, self._summarise)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
