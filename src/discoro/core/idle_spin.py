"""`IdleSpin`: a loop that just had network traffic polls for a moment before it sleeps.

Why: a thread that sleeps in ``epoll_wait`` is woken by the kernel when bytes arrive, and on a
virtual machine that wake-up is the dominant cost of a round trip (here ~25-30 us each: a
blocking ping-pong between two processes takes ~60 us across idle CPUs and ~5 us when both
poll; bench/RESULTS.md). Schedulers that care about latency busy-wait a little before they
park (Erlang's schedulers, Go's spinning threads, the kernel's own halt-polling); a discoro
loop does the same: for a short window after its last activity (a link read or written, a
batch handed over from the network) it keeps a callback ready, so the loop polls its
descriptors with a zero timeout instead of blocking, and yields the CPU (``sched_yield``) at
each turn so any other runnable thread on that CPU goes first.

Invariants:
- A loop spins only within its window after its last `touch`: once that has passed with no
  new activity, the spin stops and the loop blocks as before, so an idle process uses no
  CPU. `touch` is cheap (a clock read) and only called on the loop's own thread.
- The window adapts as the kernel's halt-polling does (`adapted`): it grows (up to the
  configured `most`) when activity came back within `most` of the last, so spinning would
  have caught it, and shrinks when activity came back later than that, so spinning could not
  have. Traffic whose gaps are longer than `most` (a far host, a message a second) soon gets
  no spinning at all, and so costs no CPU for it.
- Spinning never delays work: the spin callback is one of the loop's ready callbacks, so
  whatever became ready runs in the same turn as it would have, only sooner.
- Spinning gives way on a busy machine: each turn yields the CPU, so another runnable thread
  on it (a job, or this process's other loop with work to do) runs first, for as long as
  the scheduler gives it; when that is longer than the window, the window has passed when
  the spinner runs again, and it stops. (A backoff after such a long yield was measured and
  dropped: on two CPUs, the loops of one round trip yield to each other's work often enough
  that it turned spinning off where it pays most, bench/RESULTS.md.)
- Two defaults for `most`, by what the process's loops wait for. A client's or scheduler's
  (`DEFAULT_SPIN_US`) wait for answers to what its coroutines sent, and an answer includes
  the peer's work (a server's batch of runs takes ~0.5-0.9 ms here), so the window is long.
  A server process's (`SERVE_SPIN_US`, set by `serving` before its loops are made) wait for
  the next request, whose gap no polling can bound, and on a machine whose CPUs are all
  busy (a client and two servers on two CPUs) a longer window there polled through gaps of
  ~250 us that a sleep would have cost ~25-30 us, taking that CPU from the processes the
  next request depended on (bench/RESULTS.md).
- ``DISCORO_SPIN_US`` (microseconds, read when the loop's spin is made) sets `most` of
  every loop of the process; ``0`` turns spinning off. A value that is not a number >= 0 is
  a ValueError naming it.
"""

from __future__ import annotations

import os
from time import perf_counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "DEFAULT_SPIN_US",
    "SERVE_SPIN_US",
    "SPIN_ENV",
    "IdleSpin",
    "adapted",
    "serving",
    "spin_window",
]

SPIN_ENV = "DISCORO_SPIN_US"
#: Default longest window (us) of a process that waits for answers (a client, a
#: scheduler): longer than a same-host round trip takes here (~65-160 us from the send to
#: the answer) and than a server's turnaround for a batch of runs (~0.5-0.9 ms), so a client
#: with answers due from several peers does not sleep between them; short enough that the
#: CPU spent after the last message of a burst is negligible. 400 beat 100 and 200 for
#: round trips; 1000 beat 400 for runs (bench/RESULTS.md).
DEFAULT_SPIN_US = 1000.0
#: Default longest window (us) of a server process (`serving`): a same-host round trip's
#: gaps there (~20-60 us) fit; a server's gap between its answer and the next batch of runs
#: does not, and polling through it cost the runs ~6 % (bench/RESULTS.md).
SERVE_SPIN_US = 200.0
_default_us = DEFAULT_SPIN_US

_sched_yield = getattr(os, "sched_yield", lambda: None)


def serving() -> None:
    """This process serves requests (a server process): loops made from now on poll for up
    to `SERVE_SPIN_US` unless ``DISCORO_SPIN_US`` says otherwise."""
    global _default_us
    _default_us = SERVE_SPIN_US


def spin_window() -> float:
    """The longest spin window in seconds, from ``DISCORO_SPIN_US`` (default
    `DEFAULT_SPIN_US`, or `SERVE_SPIN_US` in a server process)."""
    text = os.environ.get(SPIN_ENV, "").strip()
    if not text:
        return _default_us / 1e6
    try:
        micros = float(text)
    except ValueError:
        micros = -1.0
    if not micros >= 0:  # also refuses nan
        raise ValueError(f"{SPIN_ENV}={text!r}: expected microseconds, a number >= 0")
    return micros / 1e6


def adapted(window: float, gap: float, most: float) -> float:
    """The next spin window, after activity came ``gap`` seconds after the last while the
    loop was not spinning (it had spun ``window`` and then slept, or not spun at all):
    doubled (from a quarter of ``most`` when it was off) if spinning up to ``most`` would
    have caught it, halved if not; windows under 1/16 of ``most`` are off (0)."""
    if gap <= most:
        return min(most, max(window * 2, most / 4))
    window /= 2
    return window if window >= most / 16 else 0.0


class IdleSpin:
    """Keeps one loop polling for a window after its last `touch`."""

    __slots__ = (
        "_last",
        "_loop",
        "_until",
        "most",
        "spinning",
        "turns",
        "window",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, most: float | None = None) -> None:
        self._loop = loop
        self.most = spin_window() if most is None else most
        self.window = self.most  #: the window now (`adapted`)
        self._last = perf_counter()  # the last activity
        self._until = 0.0
        self.spinning = False
        self.turns = 0  #: spin turns taken (tests and benchmarks read it)

    def touch(self) -> None:
        """Activity on the loop now (loop thread only): poll for the window after it."""
        most = self.most
        if not most:
            return
        now = perf_counter()
        if not self.spinning:
            self.window = window = adapted(self.window, now - self._last, most)
            self._last = now
            if window:
                self._until = now + window
                self.spinning = True
                self._loop.call_soon(self._turn)
            return
        self._last = now
        self._until = now + self.window

    def _turn(self) -> None:
        if perf_counter() >= self._until:
            self.spinning = False
            return
        self.turns += 1
        _sched_yield()  # any other runnable thread on this CPU first
        self._loop.call_soon(self._turn)
