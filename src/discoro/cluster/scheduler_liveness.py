"""What the scheduler makes of its processes' liveness notes (`discoro.net.liveness`).

- ``alive``: a server process whose loop is busy in user code still says it lives, from a
  thread. Each note from a known process goes to the scheduler's request coroutine as a
  `LoopHeard` event: the state machine treats it as a pulse, so a process busy for minutes is
  never written off while it lives (and one stopped, dead or cut off still is: its notes
  stop), and takes the note's ``stuck`` (how long the loop has not run; 0.0 once it runs
  again) into the process's `discoro.cluster.loop_watch.LoopWatch`, so new runs go elsewhere
  while that loop is stuck.
- ``ending``: a server process ends itself because coroutines there were terminated while its
  loop stayed stuck (`discoro.cluster.server_liveness`). When the state machine then reports
  that process's coroutines lost (`ProcessLost`), `rewrite` makes the terminated ones a
  terminate's normal finish (``(StopIteration, None)``, reference 1.6) and gives the others
  a reason that says what happened. Each coroutine is still reported once: this only changes
  what the one report says.
- A late tick (the scheduler's own loop was blocked, `discoro.core.stalls`) gives every
  process a fresh window: `fresh_window` sends each a `LoopHeard` that says nothing of its
  loop, before the tick.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from discoro.cluster import protocol as p
from discoro.cluster.loop_watch import LoopHeard
from discoro.cluster.scheduler_state import ProcessLost, Send
from discoro.core.log import logger
from discoro.errors import MonitorException
from discoro.net.location import Location
from discoro.net.runtime import network_of

if TYPE_CHECKING:
    from discoro.cluster.scheduler_state import SchedulerState
    from discoro.core.coro import Coro
    from discoro.core.kernel import AsynCoro
    from discoro.wire.liveness import LivenessNote

#: seconds an ``ending`` note is kept for the loss report that follows it
ENDING_KEPT = 60.0


class SchedulerLiveness:
    """Made by the scheduler shell, which then calls `watch`; tests feed `noted` directly."""

    def __init__(self, state: SchedulerState, me: Coro) -> None:
        self.state = state
        self.me = me
        self.ended: dict[Location, tuple[frozenset[int], float, float]] = {}  # ids, stuck, when

    def watch(self, kernel: AsynCoro) -> None:
        """Take the liveness notes that reach this process's network."""
        network_of(kernel).liveness.watchers.append(self.noted)

    def noted(self, note: LivenessNote) -> None:
        location = Location(note.addr, note.port)
        if location not in self.state.procs:
            return
        if note.kind == "alive":
            self.me.send(self._heard(location, note.stuck, note.time))
        elif note.kind == "ending":
            if location not in self.ended:
                logger.warning(
                    "process %s ends itself: coroutine(s) %s terminated while a job kept its "
                    "loop busy for %.1f s",
                    location,
                    ", ".join(map(str, note.coros)),
                    note.stuck,
                )
            self.ended[location] = (frozenset(note.coros), note.stuck, time.monotonic())

    def fresh_window(self) -> None:
        """Our loop was blocked: what the processes sent meanwhile may be unread; count
        each of them as heard from now."""
        for location in list(self.state.procs):
            self.me.send(self._heard(location))

    def _heard(
        self, location: Location, stuck: float | None = None, sent: float = 0.0
    ) -> LoopHeard:
        """A pulse standing for the process at ``location``: of the incarnation its record
        holds (a written-off one is then told it is fenced, as for any of its reports)."""
        proc = self.state.procs[location]
        current = self.state.current
        uid = current.spec.uid if current is not None and proc.incarnation else None
        return LoopHeard(location, uid, proc.incarnation, stuck, sent)

    def rewrite(self, actions: list[Send]) -> list[Send]:
        """The reports of coroutines lost with a process that ended itself, made to say
        why (see the module docstring)."""
        if not self.ended:
            return actions
        now = time.monotonic()
        self.ended = {loc: v for loc, v in self.ended.items() if now - v[2] < ENDING_KEPT}
        lost = [
            (index, action.message.args[0])
            for index, action in enumerate(actions)
            if isinstance(action.message, MonitorException)
            and action.message.args[1][0] is ProcessLost
            and action.message.args[0].location in self.ended
        ]
        self._rewrite_written_off(actions)
        names = {(coro.location, coro._id): str(coro) for _, coro in lost}
        used: set[Location] = set()
        for index, coro in lost:
            terminated, stuck, _ = self.ended[coro.location]
            used.add(coro.location)
            if coro._id in terminated:
                info: tuple[object, ...] = (StopIteration, None)  # as any terminate ends
            else:
                which = ", ".join(
                    names.get((coro.location, cid), str(cid)) for cid in sorted(terminated)
                )
                why = (
                    f"process {coro.location} was ended: {which} was terminated while a job "
                    f"kept its event loop busy for {stuck:.1f} s"
                )
                info = (ProcessLost, ProcessLost(why))
            actions[index] = Send(actions[index].to, MonitorException(coro, info))
        for location in used:
            del self.ended[location]
        return actions

    def _rewrite_written_off(self, actions: list[Send]) -> None:
        """A `WrittenOff` of a process that ended itself: its terminated coroutines are
        named (they end as a terminate does, at the client) and the reason says why."""
        for index, action in enumerate(actions):
            message = action.message
            if not isinstance(message, p.WrittenOff):
                continue
            location = message.location
            if not isinstance(location, Location) or location not in self.ended:
                continue
            terminated, stuck, _ = self.ended.pop(location)
            names = {coro._id: str(coro) for coro in message.coros}
            which = ", ".join(names.get(cid, str(cid)) for cid in sorted(terminated))
            why = (
                f"process {message.location} was ended: {which} was terminated while a job "
                f"kept its event loop busy for {stuck:.1f} s"
            )
            rewritten = dataclasses.replace(message, reason=why, terminated=sorted(terminated))
            actions[index] = Send(action.to, rewritten)
