"""Held sends: a message the core may still take back and fold into a later one (issue 9).

Invariant: a `HeldSend` leaves its process exactly once or not at all from here: either the
transport thread sends it (`Held.release`: asked by the core, or `HOLD_MAX` seconds after the
core held it, however long the core loop is blocked), or the core takes it back
(`Held.take`) and sends what it carried inside another message. Both go through one lock,
so never both. A server uses it for a job's start report, which it folds into the job's
end report when the job ends in its first step (one message per trivial run, not two).

Holding costs the core no hand-over to the transport thread while that thread watches
already (`Held.hold` appends under the lock): the transport loop sweeps the held sends every
`HOLD_MAX` for as long as new ones come, and stops once a sweep finds none; only the first
hold after that wakes it (`Held.watch`). So a stream of runs pays no wake-up per held send.

Where the network runs on the core's own loop (`LoopHeld`) nothing else could send a held
message, so the core keeps it until it releases or takes it; a server holds only its
`JobDone`s there (in one `JobsDone` per loop turn), never a start report, which must reach
the socket before a first step that may block the loop. The price: a job that blocks that
loop later in the same turn delays the ends held before it until it yields (unheld, they
would have been written at once); a server runs on one loop only for jobs that yield
(``--no-net-thread``, docs/cluster.md).

A held message may be overtaken by later messages on its link (it goes out when released);
only use it for a message whose order against other traffic does not matter but whose
eventual delivery does.
"""

from __future__ import annotations

import threading
from time import monotonic
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
        self.since = 0.0  # monotonic time the core held it at


class LoopHeld:
    """Held sends where the network runs on the core's own loop: nothing else can send a
    held message meanwhile, so holding is keeping it here until the core releases it (the
    same calls as `discoro.net.threaded.ThreadedNetwork`'s; no lock and no sweep: nothing
    but the core could send it; see the module text for what a blocking job delays)."""

    def send_held(self, coro: Coro, message: object) -> HeldSend:
        return HeldSend(coro, message)

    def take_held(self, held: HeldSend) -> bool:
        if held.state != HELD:
            return False
        held.state = TAKEN
        return True

    def join_held(self, held: HeldSend, items: list[object], item: object) -> bool:
        if held.state != HELD:
            return False
        items.append(item)
        return True

    def release_held(self, held: HeldSend) -> None:
        if held.state == HELD:
            held.state = SENT
            held.coro.send(held.message)


class Held:
    """The held sends of one process's transport thread. ``send(coro, message)`` is the
    network's send on the transport loop; ``loop`` that loop."""

    def __init__(self, send: Callable[[Coro, object], object]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._armed: list[HeldSend] = []  # in the order held (so by ``since``)
        self._added = False  # held since the last sweep
        self._watching = False  # a sweep is due (or a `watch` is on its way)
        self._timer: asyncio.TimerHandle | None = None
        self.sent = self.taken = 0  # counts (a test reads them)

    def hold(self, held: HeldSend) -> bool:
        """(Core.) Hold ``held``: True if the transport loop watches the held sends already;
        False: the caller must have `watch` run on the transport loop."""
        with self._lock:
            held.since = monotonic()
            self._armed.append(held)
            if self._watching:
                self._added = True  # the next sweep watches on
                return True
            self._watching = True  # (a sweep watches on while this one is held)
            return False

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

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """(Transport loop.) Sweep the held sends every `HOLD_MAX` while new ones come."""
        if self._timer is None:
            self._timer = loop.call_later(HOLD_MAX, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """(Transport loop.) Send the ones held `HOLD_MAX` ago and still held; forget the
        ones gone; watch on while any is left or new ones came since the last sweep."""
        self._timer = None
        due = monotonic() - HOLD_MAX
        with self._lock:
            left = [held for held in self._armed if held.state == HELD]
            ripe = next((i for i, held in enumerate(left) if held.since > due), len(left))
            late, left = left[:ripe], left[ripe:]
            self._armed = left
            watch = bool(left) or self._added
            self._added = False
            self._watching = watch
        for held in late:
            self.release(held)
        if watch and self._timer is None:
            wait = HOLD_MAX if not left else left[0].since + HOLD_MAX - monotonic()
            self._timer = loop.call_later(max(wait, 0.0), self._sweep, loop)
