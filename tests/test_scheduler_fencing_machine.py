"""The scheduler's exactly-once invariants under any order of events (Hypothesis).

A `RuleBasedStateMachine` drives `SchedulerState` with what three server processes could
report, in any order and from any incarnation (the current one, or one long written off),
interleaved with losses (link lost, silence) and rejoins. After every step:

- a job is in exactly one place: running in one process's ``jobs``, ended (it left them
  on its server's report: `JobDone`, or `ServerClosed` after the server told its monitors),
  or reported lost in a `WrittenOff`; never two of these, and never ended twice;
- every job is reported at most once (a `WrittenOff` never lists a job twice, nor one
  whose end was taken);
- nothing from a written-off incarnation is accepted: such a report changes no process
  record and makes no report or status message (only `Fenced`, to the process);
- a single run never goes to a process whose event loop is stuck (heartbeat notes say so,
  `discoro.cluster.loop_watch`): it goes elsewhere, or waits.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from discoro.cluster import protocol as p
from discoro.cluster.loop_watch import LoopHeard
from discoro.cluster.scheduler_state import PeerLost, ProcFound, ProcState, SchedulerState, Tick
from test_scheduler_state import ME, ROUTER, Handle, loc, spec

LOCATIONS = [loc(1, 1), loc(1, 2), loc(2, 1)]
WHERE = st.sampled_from(LOCATIONS)


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.state = SchedulerState(ME, clock=lambda: self.now)
        self.servers = {where: Handle(f"server{where}", where) for where in LOCATIONS}
        self.runs: list[tuple[Any, int, int]] = []  # (location, rid, incarnation sent with)
        self.rids = itertools.count(1)
        self.jobs: list[tuple[Handle, Any, int]] = []  # every job a server made
        self.accepted: set[int] = set()  # ids of jobs the state took as started
        self.ended: list[int] = []  # ids that left ``jobs`` on their server's report
        self.lost: list[int] = []  # ids reported lost, in order
        self.incarnations: dict[Any, set[int]] = {where: set() for where in LOCATIONS}
        self.sent = 0.0  # wall clock of the latest heartbeat note

    # -- driving ------------------------------------------------------------------------------

    def records(self) -> dict[Any, tuple[Any, ...]]:
        return {
            where: (
                proc.state,
                proc.incarnation,
                dict(proc.jobs),
                dict(proc.pending),
                proc.last_heard,
            )
            for where, proc in self.state.procs.items()
        }

    def running(self) -> set[int]:
        return {ident for proc in self.state.procs.values() for ident in proc.jobs}

    def handle(self, event: Any) -> list[Any]:
        before = self.running()
        lost = len(self.lost)
        actions = self.state.handle(event, self.now)
        for action in actions:
            message = action.message
            if isinstance(message, p.Setup):
                self.incarnations[action.to.location].add(message.incarnation)
            elif isinstance(message, p.Run):
                proc = self.state.procs[action.to.location]
                assert not proc.stuck, (proc.location, message)  # single runs only here
                self.runs.append((action.to.location, message.rid, proc.incarnation))
            elif isinstance(message, p.WrittenOff):
                self.lost.extend(coro._id for coro in message.coros)
        self.ended.extend(before - self.running() - set(self.lost[lost:]))
        return actions

    @initialize()
    def submit(self) -> None:
        for where, server in self.servers.items():
            self.handle(ProcFound(where, server))
        self.handle(p.Submit(spec()))

    def _incarnation(self, where: Any, data: st.DataObject) -> int:
        known = sorted(self.incarnations[where]) or [0]
        return int(data.draw(st.sampled_from(known)))

    def _written_off(self, incarnation: int) -> bool:
        return incarnation in self.state.written_off

    def _fenced_report(self, event: Any) -> None:
        """Handle a report from a written-off incarnation; check it was not accepted."""
        before = self.records()
        actions = self.handle(event)
        assert self.records() == before, event
        assert all(isinstance(action.message, p.Fenced) for action in actions), actions

    @rule(where=WHERE, data=st.data())
    def setup_done(self, where: Any, data: st.DataObject) -> None:
        event = p.SetupDone(where, "c1", incarnation=self._incarnation(where, data))
        if self._written_off(event.incarnation):
            self._fenced_report(event)
        else:
            self.handle(event)

    @rule()
    def run(self) -> None:
        self.handle(p.RunRequest("c1", next(self.rids), ("any",), "f", "f", b"", ROUTER))

    @rule(where=WHERE)
    def run_at(self, where: Any) -> None:
        self.handle(p.RunRequest("c1", next(self.rids), ("proc", where), "f", "f", b"", ROUTER))

    @rule(where=WHERE, data=st.data(), stuck=st.sampled_from([0.0, 1.0, 7.0]))
    def loop_note(self, where: Any, data: st.DataObject, stuck: float) -> None:
        self.sent += 1.0  # the sender's clock: notes come in order here
        incarnation = self._incarnation(where, data)
        event = LoopHeard(where, "c1", incarnation, stuck, self.sent)
        if self._written_off(incarnation):
            self._fenced_report(event)
        else:
            self.handle(event)

    @precondition(lambda self: self.runs)
    @rule(data=st.data(), stale=st.booleans())
    def job_started(self, data: st.DataObject, stale: bool) -> None:
        where, rid, incarnation = data.draw(st.sampled_from(self.runs))
        if stale:
            incarnation = self._incarnation(where, data)
        job = Handle(f"job{len(self.jobs)}", where)
        self.jobs.append((job, where, incarnation))
        event = p.JobStarted(where, "c1", rid, job, "f", 0.0, incarnation=incarnation)
        if self._written_off(incarnation):
            self._fenced_report(event)
            return
        self.handle(event)
        if job._id in self.running():
            self.accepted.add(job._id)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def job_done(self, data: st.DataObject) -> None:
        job, where, incarnation = data.draw(st.sampled_from(self.jobs))
        event = p.JobDone(where, "c1", job._id, incarnation)
        if self._written_off(incarnation):
            self._fenced_report(event)
            return
        self.handle(event)

    @rule(where=WHERE, data=st.data())
    def pulse(self, where: Any, data: st.DataObject) -> None:
        event = p.ServerPulse(where, "c1", 0, incarnation=self._incarnation(where, data))
        if self._written_off(event.incarnation):
            self._fenced_report(event)
        else:
            self.handle(event)

    @rule(where=WHERE)
    def idle_pulse(self, where: Any) -> None:
        self.handle(p.ServerPulse(where, None, 0))  # nothing installed: may rejoin

    @rule(where=WHERE, data=st.data())
    def fenced_and_closed(self, where: Any, data: st.DataObject) -> None:
        incarnation = self._incarnation(where, data)
        self.handle(p.ServerClosed(where, "c1", False, incarnation, fenced=True))

    @rule(where=WHERE)
    def link_lost(self, where: Any) -> None:
        self.handle(PeerLost(where))

    @rule(where=WHERE)
    def found_again(self, where: Any) -> None:
        self.handle(ProcFound(where, self.servers[where]))

    @rule(seconds=st.sampled_from([0.5, 2.0, 6.0]))
    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.handle(Tick(self.now))

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def a_job_is_in_exactly_one_place(self) -> None:
        running: list[int] = []
        for proc in self.state.procs.values():
            running.extend(proc.jobs)
            if proc.state is ProcState.DISCONNECTED:
                assert not proc.jobs
        assert len(running) == len(set(running))
        assert len(self.ended) == len(set(self.ended))
        places = [set(running), set(self.ended), set(self.lost)]
        for first, second in itertools.combinations(places, 2):
            assert not first & second
        # every job the state took is in one of them (no computation closes here)
        assert self.accepted == set(running) | set(self.ended) | set(self.lost)

    @invariant()
    def every_job_is_reported_at_most_once(self) -> None:
        assert len(self.lost) == len(set(self.lost))

    @invariant()
    def written_off_incarnations_are_never_current(self) -> None:
        for proc in self.state.procs.values():
            if proc.incarnation in self.state.written_off:
                assert proc.state is ProcState.DISCONNECTED


SchedulerMachine.TestCase.settings = settings(
    derandomize=True, database=None, deadline=None, max_examples=150, stateful_step_count=40
)
test_scheduler_fencing_machine = SchedulerMachine.TestCase
