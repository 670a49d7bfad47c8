"""`DialGate`: when discovery may dial a process it heard of (outgoing admission policy).

Discovery dials whoever announces itself; a flood of announcements (replays within the
window, a misbehaving member, or a cluster of hundreds starting at once) must not turn into a
flood of connections. The gate says no when:
- the announcing source (the datagram's sender address) has used up its token bucket
  (`PER_SOURCE_RATE` dials per second, bursts of `PER_SOURCE_BURST`);
- all sources together used up theirs (`TOTAL_RATE` per second, bursts of `TOTAL_BURST`);
- the location failed to connect recently: after the n-th failure in a row it is left alone
  for ``BACKOFF_BASE * 2**(n-1)`` seconds, at most `BACKOFF_MAX` (exponential backoff).

Invariants: memory is bounded (at most `MAX_TRACKED` sources and `MAX_TRACKED` failing
locations; the oldest entries go first); the gate never blocks, it answers at once; a
refused dial is dropped (the peer announces again, or answers our reply, later).
"""

from __future__ import annotations

from time import monotonic
from typing import TYPE_CHECKING

from discoro.net.ratelimit import TokenBucket

if TYPE_CHECKING:
    from discoro.net.location import Location

__all__ = ["DialGate"]

PER_SOURCE_RATE, PER_SOURCE_BURST = 4.0, 16.0
TOTAL_RATE, TOTAL_BURST = 16.0, 64.0
BACKOFF_BASE, BACKOFF_MAX = 1.0, 60.0
MAX_TRACKED = 4096


class DialGate:
    """Rate limits and backoff for discovery's dials (see the module docstring)."""

    def __init__(self, now: float | None = None) -> None:
        self.total = TokenBucket(TOTAL_RATE, TOTAL_BURST, now)
        self._sources: dict[str, TokenBucket] = {}
        self._failures: dict[Location, tuple[int, float]] = {}  # -> (in a row, not before)

    def check(self, source: str, location: Location, now: float | None = None) -> str:
        """ "" when ``location`` (announced by ``source``) may be dialled now (a token is
        taken), else the reason it may not: "backoff", "source rate" or "total rate"."""
        now = monotonic() if now is None else now
        failed = self._failures.get(location)
        if failed is not None and now < failed[1]:
            return "backoff"
        bucket = self._sources.get(source)
        if bucket is None:
            if len(self._sources) >= MAX_TRACKED:
                self._forget_full_buckets(now)
            bucket = TokenBucket(PER_SOURCE_RATE, PER_SOURCE_BURST, now)
            self._sources[source] = bucket
        if not bucket.take(now):
            return "source rate"
        if not self.total.take(now):
            return "total rate"
        return ""

    def failed(self, location: Location, now: float | None = None) -> float:
        """A dial of ``location`` failed; the seconds it is now left alone."""
        now = monotonic() if now is None else now
        count = self._failures.pop(location, (0, 0.0))[0] + 1
        delay = min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** min(count - 1, 30))
        self._failures[location] = (count, now + delay)
        while len(self._failures) > MAX_TRACKED:
            del self._failures[next(iter(self._failures))]
        return delay

    def succeeded(self, location: Location) -> None:
        self._failures.pop(location, None)

    def _forget_full_buckets(self, now: float) -> None:
        for source in [s for s, bucket in self._sources.items() if bucket.full(now)]:
            del self._sources[source]
        while len(self._sources) >= MAX_TRACKED:
            del self._sources[next(iter(self._sources))]
