"""Held sends: a message the core may still take back and fold into a later one (issue 9).

Invariant: a `HeldSend` leaves its process exactly once or not at all from here: either the
transport thread sends it (`Held.release`: asked by the core, or `HOLD_MAX` seconds after it
was handed over, however long the core loop is blocked), or the core takes it back
(`Held.take`) and sends what it carried inside another message. Both go through one lock,
so never both. A server uses it for a job's start report, which it folds into the job's
end report when the job ends in its first step (one message per trivial run, not two).

A held message may be overtaken by later messages on its link (it goes out when released);
only use it for a message whose order against other traffic does not matter but whose
eventual delivery does.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from discoro.core.coro import Coro

#: Seconds a held send waits at most for its core to release or take it (the bound on how
#: late a job that blocks its loop in its first step gets its ``run`` answered).
HOLD_MAX = 0.005

HELD, SENT, TAKEN = 0, 1, 2


class HeldSend:
    """``message`` for ``coro``, held (see the module docstring)."""

    __slots__ = ("coro", "message", "since", "state")

    def __init__(self, coro: Coro, message: object) -> None:
        self.coro = coro
        self.message = message
        self.state = HELD
        self.since = 0.0  # transport loop time it was armed at


class Held:
    """The held sends of one process's transport thread. ``send(coro, message)`` is the
    network's send on the transport loop; ``loop`` that loop."""

    def __init__(self, send: Callable[[Coro, object], object]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._armed: list[HeldSend] = []
        self._timer: asyncio.TimerHandle | None = None
        self.sent = self.taken = 0  # counts (a test reads them)

    def take(self, held: HeldSend) -> bool:
        """(Core.) Take ``held`` back if it has not gone out: the caller sends its content."""
        with self._lock:
            if held.state != HELD:
                return False
            held.state = TAKEN
            self.taken += 1
            return True

    def join(self, held: HeldSend, items: list[object], item: object) -> bool:
        """(Core.) Append ``item`` to ``items`` (a list in ``held``'s message) if ``held``
        has not gone out: it then goes out with it (False: send ``item`` otherwise)."""
        with self._lock:
            if held.state != HELD:
                return False
            items.append(item)
            return True

    def release(self, held: HeldSend) -> None:
        """(Transport loop.) Send ``held`` now unless it went out or was taken."""
        with self._lock:
            if held.state != HELD:
                return
            held.state = SENT
            self.sent += 1
        self._send(held.coro, held.message)

    def arm(self, held: HeldSend, loop: asyncio.AbstractEventLoop) -> None:
        """(Transport loop.) Release ``held`` at most `HOLD_MAX` s from now (one timer for
        all of them)."""
        if held.state != HELD:
            return
        held.since = loop.time()
        self._armed.append(held)
        if self._timer is None:
            self._timer = loop.call_later(HOLD_MAX, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        due = loop.time() - HOLD_MAX
        armed, self._armed = self._armed, []
        for index, held in enumerate(armed):
            if held.since > due:  # armed later than the timer's first: wait for the rest
                self._armed = [item for item in armed[index:] if item.state == HELD]
                break
            self.release(held)
        if self._armed:
            wait = self._armed[0].since + HOLD_MAX - loop.time()
            self._timer = loop.call_later(max(wait, 0.0), self._sweep, loop)
