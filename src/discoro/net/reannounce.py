"""Announcing again after the start, with backoff, so a process cut off by a partition is
found again once the network heals (DESIGN decision 7).

`Reannouncer` calls ``send()`` after `REANNOUNCE_FIRST` seconds, then after twice that, ...
up to `REANNOUNCE_MAX` seconds between sends, for as long as it runs; `Reannouncer.restart`
(something changed: the process lost its scheduler, its computation closed) starts the
backoff over. `backoff` is the schedule, also used by the scheduler's re-probing.

Invariants: at most one schedule runs per `Reannouncer`; sends are never closer together
than the first pause, and settle at one per `REANNOUNCE_MAX` seconds; `stop` ends it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

__all__ = ["REANNOUNCE_FIRST", "REANNOUNCE_MAX", "Reannouncer", "backoff"]

REANNOUNCE_FIRST = 1.0
REANNOUNCE_MAX = 30.0


def backoff(first: float, limit: float) -> Iterator[float]:
    """Pauses ``first``, twice that, ... up to ``limit``, then ``limit`` for ever."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, limit)


class Reannouncer:
    """Calls ``send()`` on a backoff schedule on ``loop`` (its thread only)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        send: Callable[[], None],
        first: float = REANNOUNCE_FIRST,
        limit: float = REANNOUNCE_MAX,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        """``sleep``: how to wait (tests pass one that records the pauses)."""
        self.loop = loop
        self.sleep = sleep
        self.send = send
        self.first = first
        self.limit = limit
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def restart(self) -> None:
        """(Re)start the schedule: the next send is ``first`` seconds from now."""
        self.stop()
        self._task = self.loop.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        for delay in backoff(self.first, self.limit):
            await self.sleep(delay)
            self.send()
