"""`IdleSpin`: a loop that just had network traffic polls for a moment before it sleeps.

Why: a thread that sleeps in ``epoll_wait`` is woken by the kernel when bytes arrive, and on a
virtual machine that wake-up is the dominant cost of a round trip (here ~25-30 us each: a
blocking ping-pong between two processes takes ~60 us across CPUs and ~5 us when both poll;
bench/RESULTS.md). Schedulers that care about latency busy-wait a little before they park
(Erlang's schedulers, Go's spinning threads, the kernel's own halt-polling); a discoro loop
does the same: for `window` seconds after its last activity (a link read or written, a batch
handed over from the network) it keeps a callback ready, so the loop polls its descriptors
with a zero timeout instead of blocking, and yields the CPU (``sched_yield``) at each turn so
any other runnable thread on that CPU goes first.

Invariants:
- A loop spins only within `window` of its last `touch`: once the window has passed with no
  new activity, the spin stops and the loop blocks as before, so an idle process uses no
  CPU. `touch` is cheap (a clock read) and only called on the loop's own thread.
- Spinning never delays work: the spin callback is one of the loop's ready callbacks, so
  whatever became ready runs in the same turn as it would have, only sooner.
- Spinning gives way on a busy machine: a ``sched_yield`` that kept us off the CPU for more
  than `CONTENDED` seconds means another thread needed this CPU; the loop then stops
  spinning and does not spin again for `BACK_OFF` seconds. (A runnable spinner has spent its
  share; a sleeper that is woken is run promptly. So under contention spinning would only
  make a loop answer later.)
- ``DISCORO_SPIN_US`` (microseconds, read when the loop's spin is made) sets the window;
  ``0`` turns spinning off. A value that is not a number >= 0 is a ValueError naming it.
"""

from __future__ import annotations

import os
from time import perf_counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

__all__ = ["SPIN_ENV", "IdleSpin", "spin_window"]

SPIN_ENV = "DISCORO_SPIN_US"
#: Default window (us): longer than a round trip's far side takes here (~50-100 us), so a
#: ping-pong never sleeps; short enough that the CPU spent after the last message of a burst
#: is negligible.
DEFAULT_SPIN_US = 200.0

#: A ``sched_yield`` longer than this (s) means another thread wanted the CPU: stop spinning.
CONTENDED = 20e-6
#: ... and do not spin again for this long (s).
BACK_OFF = 0.05

_sched_yield = getattr(os, "sched_yield", lambda: None)


def spin_window() -> float:
    """The spin window in seconds, from ``DISCORO_SPIN_US`` (default `DEFAULT_SPIN_US`)."""
    text = os.environ.get(SPIN_ENV, "").strip()
    if not text:
        return DEFAULT_SPIN_US / 1e6
    try:
        micros = float(text)
    except ValueError:
        micros = -1.0
    if not micros >= 0:  # also refuses nan
        raise ValueError(f"{SPIN_ENV}={text!r}: expected microseconds, a number >= 0")
    return micros / 1e6


class IdleSpin:
    """Keeps one loop polling for `window` seconds after its last `touch`."""

    __slots__ = ("_loop", "_quiet_until", "_until", "backoffs", "spinning", "turns", "window")

    def __init__(self, loop: asyncio.AbstractEventLoop, window: float | None = None) -> None:
        self._loop = loop
        self.window = spin_window() if window is None else window
        self._until = 0.0
        self._quiet_until = 0.0  # no spinning before this (the CPU was contended)
        self.spinning = False
        self.turns = 0  #: spin turns taken (tests and benchmarks read it)
        self.backoffs = 0  #: times spinning gave way to another thread

    def touch(self) -> None:
        """Activity on the loop now (loop thread only): poll until `window` after it."""
        window = self.window
        if not window:
            return
        now = perf_counter()
        self._until = now + window
        if not self.spinning and now >= self._quiet_until:
            self.spinning = True
            self._loop.call_soon(self._turn)

    def _turn(self) -> None:
        start = perf_counter()
        if start >= self._until:
            self.spinning = False
            return
        self.turns += 1
        _sched_yield()
        end = perf_counter()
        if end - start > CONTENDED:  # we were off the CPU: someone else needs it
            self.spinning = False
            self.backoffs += 1
            self._quiet_until = end + BACK_OFF
            return
        self._loop.call_soon(self._turn)
