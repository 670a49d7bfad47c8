"""`RunBatcher`: the `Run`s a scheduler places in one loop turn go to each server as one
message (`protocol.Runs`) when there are several (issue 9: fewer frames per run).

Invariants: every `Run` handed to `add` is sent exactly once, to its server, in the order
it was added; a batch goes out at the end of the loop turn (one ``call_soon``), or at once
when anything else is about to be sent (`flush`), so the scheduler's messages keep the order
it made them in. A server takes a `Runs` as its runs one after another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discoro.cluster import protocol as p
from discoro.core.log import logger

if TYPE_CHECKING:
    import asyncio

    from discoro.core.coro import Coro


class RunBatcher:
    """Runs waiting for the end of this loop turn, per server coroutine."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: dict[Coro, list[p.Run]] = {}
        self.batches = self.batched = 0  # messages of several runs, and their runs

    def add(self, to: Coro, run: p.Run) -> None:
        waiting = self._waiting
        if not waiting:
            self._loop.call_soon(self.flush)
        runs = waiting.get(to)
        if runs is None:
            waiting[to] = [run]
        else:
            runs.append(run)

    def flush(self) -> None:
        """Send every waiting run now (one message per server)."""
        if not self._waiting:
            return
        waiting, self._waiting = self._waiting, {}
        for to, runs in waiting.items():
            message: object = runs[0]
            if len(runs) > 1:
                message = p.Runs(runs)
                self.batches += 1
                self.batched += len(runs)
            if to.send(message) < 0:
                logger.debug("could not send %d run(s) to %s", len(runs), to)
