"""The liveness rules without a network: what the scheduler makes of notes
(`cluster.scheduler_liveness`), when a heartbeat thread ends its process
(`net.liveness.HeartbeatThread`), and the stall rule (`core.stalls`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace

from discoro.cluster import protocol as p
from discoro.cluster.loop_watch import LoopHeard
from discoro.cluster.scheduler_liveness import SchedulerLiveness
from discoro.cluster.scheduler_procs import Proc
from discoro.cluster.scheduler_state import ProcessLost, SchedulerState, Send
from discoro.core.stalls import ran_late
from discoro.errors import MonitorException
from discoro.net.liveness import HeartbeatThread
from discoro.net.location import Location
from discoro.wire.liveness import LivenessNote

WHERE = Location("10.0.0.1", 40000)


@dataclass
class Mailbox:
    got: list[object] = field(default_factory=list)

    def send(self, message: object) -> int:
        self.got.append(message)
        return 0


@dataclass
class Handle:
    """Stands for a remote coroutine handle."""

    _id: int
    location: Location


def note(kind: str, coros: tuple[int, ...] = ()) -> LivenessNote:
    return LivenessNote(kind, time.time(), "sid", WHERE.addr, WHERE.port, 7, 9.0, 0, coros)


def scheduler_liveness() -> tuple[SchedulerLiveness, Mailbox]:
    state = SchedulerState()
    state.procs[WHERE] = Proc(WHERE, "server")
    me = Mailbox()
    return SchedulerLiveness(state, me), me  # type: ignore[arg-type]


def test_alive_notes_of_known_processes_are_pulses_that_say_how_stuck_the_loop_is() -> None:
    liveness, me = scheduler_liveness()
    made = note("alive")
    liveness.noted(made)
    assert me.got == [LoopHeard(WHERE, None, 0, 9.0, made.time)]
    other = LivenessNote("alive", time.time(), "sid", "10.0.0.2", 1, 7)
    liveness.noted(other)  # not one of the scheduler's processes
    assert len(me.got) == 1
    liveness.fresh_window()  # heard, but nothing is known of its loop
    assert me.got[-1] == LoopHeard(WHERE, None, 0, None)
    liveness.state.procs[WHERE].incarnation = 3  # a pulse of the incarnation its record holds
    made = note("alive")
    liveness.noted(made)
    assert me.got[-1] == LoopHeard(WHERE, None, 3, 9.0, made.time)


def test_a_written_off_process_that_ended_itself_names_its_terminated_coroutines() -> None:
    liveness, _ = scheduler_liveness()
    spinner, napper = Handle(5, WHERE), Handle(4, WHERE)
    liveness.noted(note("ending", (5,)))
    written_off = p.WrittenOff(WHERE, 2, "silent", [spinner, napper])  # type: ignore[list-item]
    (action,) = liveness.rewrite([Send("router", written_off)])
    assert action.message.terminated == [5]
    assert "was terminated while a job kept its event loop busy for 9.0 s" in action.message.reason
    assert liveness.rewrite([Send("router", written_off)])[0].message == written_off  # once


def lost(coro: Handle) -> Send:
    error = ProcessLost(f"process {coro.location} was lost")
    return Send("status", MonitorException(coro, (ProcessLost, error)))


def test_an_ending_process_reports_terminated_and_lost_once_each() -> None:
    liveness, _ = scheduler_liveness()
    spinner, napper, elsewhere = (
        Handle(5, WHERE),
        Handle(4, WHERE),
        Handle(4, Location("10.0.0.9", 1)),
    )
    unrelated = Send("router", p.Pulse("uid"))
    assert liveness.rewrite([lost(spinner)])[0].message.args[1][0] is ProcessLost  # no note yet
    liveness.noted(note("ending", (5,)))
    actions = liveness.rewrite([lost(spinner), lost(napper), lost(elsewhere), unrelated])
    reports = [action.message for action in actions]
    assert reports[0].args == (spinner, (StopIteration, None))  # as any terminate ends
    kind, error = reports[1].args[1]
    assert kind is ProcessLost and f"{spinner} was terminated while a job" in str(error)
    assert reports[2].args[1][0] is ProcessLost and "was lost" in str(reports[2].args[1][1])
    assert reports[3] is unrelated.message
    assert liveness.rewrite([lost(napper)])[0].message.args[1][1].args == (
        f"process {WHERE} was lost",
    )  # used once: a later loss of the process is an ordinary one


def thread(loop_ran: float) -> tuple[HeartbeatThread, list[tuple[list[int], float]]]:
    net = SimpleNamespace(location=WHERE, sid="sid", ping_interval=1.0)
    liveness = SimpleNamespace(net=net, host="127.0.0.1", loop_ran=loop_ran, targets=(), key=b"k")
    wedged: list[tuple[list[int], float]] = []
    made = HeartbeatThread(liveness, 3.0, lambda ids, stuck: wedged.append((ids, stuck)))  # type: ignore[arg-type]
    made.sock.close()  # never started: only its rules are used
    return made, wedged


def test_a_terminate_the_loop_never_ran_after_ends_the_process_after_the_grace() -> None:
    made, wedged = thread(loop_ran=100.0)
    made.pending = {5: 101.0, 6: 103.0}
    made._check_pending(103.5)
    assert wedged == []  # within the grace
    made._check_pending(104.0)
    assert wedged == [([5], 4.0)] and made.pending == {6: 103.0}


def test_a_terminate_the_loop_ran_after_is_forgotten() -> None:
    made, wedged = thread(loop_ran=102.0)  # the loop ran after the request came
    made.pending = {5: 101.0}
    made._check_pending(104.5)
    assert wedged == [] and made.pending == {}


def test_a_check_far_later_than_its_period_ran_late() -> None:
    assert not ran_late(0.0, 1.0, 1.0)
    assert not ran_late(0.0, 2.4, 1.0)  # a loaded machine's lag
    assert ran_late(0.0, 2.6, 1.0)  # our loop was blocked
