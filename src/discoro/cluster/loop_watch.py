"""What the scheduler knows of one server process's event loop: it runs, or it is stuck
since when (no I/O; the clock comes in with every call).

A job that blocks its process's loop (``time.sleep(30)``, a CPU loop that never yields)
leaves the process alive (its heartbeat thread says so, `discoro.net.liveness`) but unable
to start anything new: a run placed there waits until the job yields. So placement
(`discoro.cluster.placement`) prefers processes whose loop runs.

Theory of operation: a process's loop moves between two states only through
`LoopWatch.heard`, which looks ``(state, event)`` up in `LOOP_TRANSITIONS` (an unknown pair
raises `LoopError`, loudly):

    RUNNING --stuck note--> STUCK     a heartbeat note: the loop has not run for ``stuck`` s
    STUCK   --stuck note--> STUCK     (a later note of the same episode: ``since`` stays)
    STUCK   --loop ran---->  RUNNING  a recovery note (``stuck`` 0.0), or anything only a
    RUNNING --loop ran---->  RUNNING  running loop sends (a pulse, a job's start or end,
                                      a setup's answer)

A note the sender made before one already taken (its ``sent`` wall clock is older) says
nothing new and is ignored: datagrams may come out of order. `LoopWatch.heard` returns the
change (`Change`) when the state changed, so the shell logs each transition once, not every
heartbeat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from discoro.core.identity_enum import IdentityEnum

__all__ = [
    "LOOP_TRANSITIONS",
    "Change",
    "LoopError",
    "LoopEvent",
    "LoopHeard",
    "LoopState",
    "LoopWatch",
]


class LoopState(IdentityEnum):
    RUNNING = "running"
    STUCK = "stuck"


class LoopEvent(IdentityEnum):
    STUCK_NOTE = "stuck note"  # a heartbeat note: the loop has not run for a while
    LOOP_RAN = "loop ran"  # the loop runs again (a recovery note, or a report of the loop)


LOOP_TRANSITIONS: dict[tuple[LoopState, LoopEvent], LoopState] = {
    (LoopState.RUNNING, LoopEvent.STUCK_NOTE): LoopState.STUCK,
    (LoopState.STUCK, LoopEvent.STUCK_NOTE): LoopState.STUCK,
    (LoopState.STUCK, LoopEvent.LOOP_RAN): LoopState.RUNNING,
    (LoopState.RUNNING, LoopEvent.LOOP_RAN): LoopState.RUNNING,
}


class LoopError(RuntimeError):
    """An event the loop table has no transition for (a bug in the caller)."""


class Change(NamedTuple):
    """A change of a loop's state: to ``state``; ``stuck_for``: how long it had been stuck
    (to RUNNING) or has been stuck (to STUCK), in seconds."""

    state: LoopState
    stuck_for: float


@dataclass(frozen=True)
class LoopHeard:
    """Scheduler event: the process at ``location`` lives (a heartbeat note from its
    liveness thread, or `SchedulerLiveness.fresh_window`): it counts as that process's
    pulse, of the computation ``uid`` (None: idle) and incarnation ``incarnation``.
    ``stuck``: how long its event loop has not run, from the note (0.0: it runs again;
    None: nothing is known of its loop); ``sent``: the note's wall clock at its sender."""

    location: object
    uid: str | None
    incarnation: int = 0
    stuck: float | None = None
    sent: float = 0.0


@dataclass
class LoopWatch:
    """One process's loop (see the module docstring)."""

    state: LoopState = LoopState.RUNNING
    since: float = 0.0  # monotonic: when the loop last ran before it got stuck (if STUCK)
    latest_note: float = 0.0  # the sender's wall clock of the newest note taken
    loud: bool = False  # this episode is logged at INFO (`SchedulerState` decides)
    loud_at: float = -math.inf  # monotonic: when the latest loud episode began

    @property
    def stuck(self) -> bool:
        return self.state is LoopState.STUCK

    def stuck_for(self, now: float) -> float:
        """Seconds the loop has been stuck at ``now`` (0.0 while it runs)."""
        return max(0.0, now - self.since) if self.stuck else 0.0

    def noted(self, stuck: float, sent: float, now: float) -> Change | None:
        """A heartbeat note made at ``sent`` (sender's wall clock) says the loop has not run
        for ``stuck`` seconds (0.0: it runs again); the change, if any."""
        if sent and sent < self.latest_note:
            return None  # older than one taken: out of order
        self.latest_note = max(self.latest_note, sent)
        if stuck > 0.0:
            return self.heard(LoopEvent.STUCK_NOTE, now, stuck)
        return self.heard(LoopEvent.LOOP_RAN, now)

    def heard(self, event: LoopEvent, now: float, stuck: float = 0.0) -> Change | None:
        """Move along the table on ``event`` at monotonic ``now``; the change, if any."""
        if event is LoopEvent.LOOP_RAN and self.state is LoopState.RUNNING:
            return None  # the table's (RUNNING, LOOP_RAN) -> RUNNING: every job report
        try:
            state = LOOP_TRANSITIONS[self.state, event]
        except KeyError:
            raise LoopError(
                f"loop: no transition for {event.value!r} in state {self.state.value!r}"
            ) from None
        was = self.state
        stuck_for = self.stuck_for(now)
        self.state = state
        if state is was:
            return None
        if state is LoopState.STUCK:
            self.since = now - stuck
            return Change(state, stuck)
        return Change(state, stuck_for)
