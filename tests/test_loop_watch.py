"""A process whose event loop is stuck in user code gets no new runs while others can take
them (issue 10), without a network: the loop's table (`discoro.cluster.loop_watch`) with an
injected clock, and the placement rules in the scheduler's state machine."""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from discoro.cli.status import format_table
from discoro.cluster import protocol as p
from discoro.cluster.loop_watch import (
    LOOP_TRANSITIONS,
    Change,
    LoopEvent,
    LoopHeard,
    LoopState,
    LoopWatch,
)
from discoro.cluster.scheduler_state import ProcState, SchedulerState, Tick
from discoro.cluster.snapshot import snapshot
from discoro.net.liveness import HeartbeatThread
from discoro.net.location import Location
from discoro.wire.liveness import decode_liveness
from test_run_waiting import found, runs
from test_scheduler_state import ME, ROUTER, loc, sent
from test_slots_state import end, place, request
from testing import ManualClock

A1, A2, B1 = loc(1, 1), loc(1, 2), loc(2, 1)
TIMEOUT = 10.0  # the computation's (`spec`)

# -- the table -----------------------------------------------------------------------------


def test_the_table_has_a_move_for_every_state_and_event() -> None:
    assert set(LOOP_TRANSITIONS) == {(s, e) for s in LoopState for e in LoopEvent}


def test_a_loop_is_stuck_from_the_first_note_and_runs_again_once() -> None:
    watch = LoopWatch()
    assert not watch.stuck and watch.stuck_for(100.0) == 0.0
    # a note at 100 says the loop has not run for 1.5 s: stuck since 98.5
    assert watch.noted(1.5, sent=1.0, now=100.0) == Change(LoopState.STUCK, 1.5)
    assert watch.stuck and watch.since == 98.5
    assert watch.noted(2.6, sent=2.0, now=101.0) is None  # the same episode: no change
    assert watch.since == 98.5 and watch.stuck_for(104.0) == 5.5
    assert watch.heard(LoopEvent.LOOP_RAN, 104.0) == Change(LoopState.RUNNING, pytest.approx(5.5))
    assert watch.heard(LoopEvent.LOOP_RAN, 105.0) is None  # once per transition
    assert not watch.stuck and watch.stuck_for(106.0) == 0.0


def test_a_recovery_note_ends_the_episode_and_an_older_note_is_ignored() -> None:
    watch = LoopWatch()
    watch.noted(0.8, sent=10.0, now=50.0)
    assert watch.noted(0.0, sent=12.0, now=52.0) == Change(LoopState.RUNNING, pytest.approx(2.8))
    assert watch.noted(2.5, sent=11.0, now=52.1) is None  # made before the recovery note
    assert not watch.stuck
    assert watch.noted(0.6, sent=13.0, now=53.0) == Change(LoopState.STUCK, 0.6)  # again


# -- placement in the scheduler's state machine ------------------------------------------


def ready(*locations: Location, pulse_interval: float = 5.0) -> tuple[SchedulerState, ManualClock]:
    """A state whose computation (``timeout`` 10 s) has ``locations`` ready; with a pulse
    interval of 5 s, processes are written off after 25 s of silence."""
    clock = ManualClock()
    state = SchedulerState(ME, clock=clock)
    found(state, *locations)
    state.handle(
        p.Submit(p.ComputationSpec("c1", b"", [], [], None, ROUTER, pulse_interval, TIMEOUT))
    )
    for location in locations:
        state.handle(p.SetupDone(location, "c1", incarnation=state.procs[location].incarnation))
    return state, clock


def note(state: SchedulerState, where: Location, stuck: float) -> list[object]:
    """The heartbeat note of ``where`` (stuck 0.0: its loop runs again), made now."""
    proc = state.procs[where]
    event = LoopHeard(where, "c1", proc.incarnation, stuck, time.time())
    return list(state.handle(event, state.clock()))


def replies(actions: list[object]) -> list[p.Reply]:
    return [m for m in sent(actions, ROUTER) if isinstance(m, p.Reply)]  # type: ignore[arg-type]


def test_runs_avoid_a_stuck_process_and_use_it_again_once_its_job_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state, clock = ready(A1, A2)
    assert place(state, 1, "cpu", ("proc", A1)) == A1  # the blocker
    with caplog.at_level(logging.INFO, logger="discoro"):
        note(state, A1, 1.2)
        clock.advance(1)
        note(state, A1, 2.2)  # every heartbeat: one line only
        assert state.procs[A1].stuck and state.procs[A1].last_heard == clock()
        assert [place(state, rid, "cpu") for rid in range(2, 22)] == [A2] * 20
        clock.advance(1)
        end(state, A1, 1)  # the blocker ended: its loop runs
    assert not state.procs[A1].stuck
    messages = [r.getMessage() for r in caplog.records if str(A1) in r.getMessage()]
    assert len(messages) == 2, messages
    assert "busy in user code (its event loop has not run for 1.2 s)" in messages[0]
    assert "runs again (its event loop was stuck for 3.2 s)" in messages[1]
    assert place(state, 22, "cpu") == A1  # its free slot


def test_a_pulse_or_a_recovery_note_ends_the_stuck_state_but_a_fresh_window_does_not() -> None:
    state, clock = ready(A1, A2)
    note(state, A1, 1.0)
    state.handle(LoopHeard(A1, "c1", state.procs[A1].incarnation, None), clock())
    assert state.procs[A1].stuck  # the scheduler's own loop was late: says nothing
    note(state, A1, 0.0)
    assert not state.procs[A1].stuck
    note(state, A1, 1.0)
    state.handle(p.ServerPulse(A1, "c1", 1, incarnation=state.procs[A1].incarnation), clock())
    assert not state.procs[A1].stuck


def test_stuck_notes_keep_a_busy_process_from_being_written_off() -> None:
    state, clock = ready(A1, A2, pulse_interval=1.0)
    for _ in range(30):  # 30 s of a job that never yields, 1 s pulse interval
        clock.advance(1)
        note(state, A1, 1.0)
        state.handle(p.ServerPulse(A2, "c1", 0, incarnation=state.procs[A2].incarnation))
        state.handle(Tick(clock()))
    assert state.procs[A1].state is ProcState.INITIALIZED and state.procs[A1].stuck


def test_a_run_at_a_stuck_process_waits_for_it_and_goes_when_it_runs_again() -> None:
    state, clock = ready(A1, A2)
    note(state, A1, 1.0)
    assert state.handle(request(5, "cpu", ("proc", A1))) == []  # held
    clock.advance(4)
    assert not runs(state.handle(Tick(clock())))
    [(target, run)] = runs(note(state, A1, 0.0))  # it runs again: the run goes at once
    assert target == A1 and run.rid == 5


def test_a_run_at_a_process_stuck_past_the_timeout_is_refused_with_the_reason() -> None:
    state, clock = ready(A1, A2)
    note(state, A1, 1.0)
    state.handle(request(5, "cpu", ("proc", A1)))
    state.handle(request(6, "async", ("node", A1.addr)))  # the other process of A1's node
    clock.advance(TIMEOUT - 1)
    assert replies(note(state, A1, TIMEOUT) + state.handle(Tick(clock()))) == []  # waits
    clock.advance(2)
    (refusal,) = replies(note(state, A1, TIMEOUT + 2) + state.handle(Tick(clock())))
    assert refusal.rid == 5 and refusal.value is None
    assert refusal.error == (
        f"server process {A1} is busy in user code (its event loop has been stuck for 12.0 s): "
        "the run did not start (waited 10 s)"
    )


def test_a_run_at_a_node_takes_its_running_process_or_waits_while_all_are_stuck() -> None:
    state, clock = ready(A1, A2, B1)
    note(state, A1, 1.0)
    assert place(state, 1, "cpu", ("node", A1.addr)) == A2
    note(state, A2, 1.0)
    assert state.handle(request(2, "cpu", ("node", A1.addr))) == []  # both stuck: held
    clock.advance(TIMEOUT + 1)
    actions = note(state, A1, TIMEOUT + 2) + note(state, A2, TIMEOUT + 2)
    (refusal,) = replies(actions + state.handle(Tick(clock())))
    assert refusal.rid == 2 and str(refusal.error).startswith(
        "every server process that could take it is busy in user code (event loops stuck: "
    )
    assert f"{A1} for" in str(refusal.error) and f"{A2} for" in str(refusal.error)


def test_a_run_anywhere_waits_while_every_process_is_stuck_and_says_why_once() -> None:
    state, clock = ready(A1, A2)
    note(state, A1, 1.0)
    note(state, A2, 1.0)
    assert state.handle(request(7, "cpu")) == []
    assert state.handle(request(8, "result")) == []
    clock.advance(TIMEOUT + 1)
    actions = note(state, A1, TIMEOUT + 2) + note(state, A2, TIMEOUT + 2)
    actions += state.handle(Tick(clock()))
    told = [m for m in sent(actions, ROUTER) if isinstance(m, p.RunWaits)]  # type: ignore[arg-type]
    assert [m.rid for m in told] == [7, 8]
    assert "busy in user code" in told[0].reason and "the run waits" in told[0].reason
    clock.advance(1)
    assert not [
        m for m in sent(state.handle(Tick(clock())), ROUTER) if not isinstance(m, p.Pulse)
    ]  # once; no refusal: it goes on waiting
    placed = runs(note(state, A2, 0.0))
    assert [(target, run.rid) for target, run in placed] == [(A2, 7)]  # 8 needs a free slot
    assert [(target, run.rid) for target, run in runs(note(state, A1, 0.0))] == [(A1, 8)]


def test_run_result_at_a_stuck_process_keeps_waiting_past_the_timeout() -> None:
    state, clock = ready(A1, A2)
    note(state, A1, 1.0)
    state.handle(request(3, "result", ("proc", A1)))
    clock.advance(TIMEOUT + 1)
    assert replies(note(state, A1, TIMEOUT + 2) + state.handle(Tick(clock()))) == []
    [(target, run)] = runs(note(state, A1, 0.0))
    assert target == A1 and run.rid == 3


def test_each_node_prefers_a_running_process_and_each_proc_still_reaches_all() -> None:
    state, _ = ready(A1, A2, B1)
    note(state, A1, 1.0)
    targets = [t for t, _ in runs(state.handle(request(1, "async", ("each_node",))))]
    assert sorted(map(str, targets)) == sorted(map(str, (A2, B1)))
    targets = [t for t, _ in runs(state.handle(request(2, "async", ("each_proc",))))]
    assert len(targets) == 3


def test_a_note_from_a_written_off_incarnation_is_not_taken() -> None:
    state, clock = ready(A1, A2, pulse_interval=1.0)
    incarnation = state.procs[A1].incarnation
    clock.advance(6)  # silent for more than 5 pulses
    state.handle(p.ServerPulse(A2, "c1", 0, incarnation=state.procs[A2].incarnation))
    state.handle(Tick(clock()))
    assert state.procs[A1].state is ProcState.DISCONNECTED
    actions = state.handle(LoopHeard(A1, "c1", incarnation, 1.0, time.time()))
    assert [type(a.message) for a in actions] == [p.Fenced]
    assert not state.procs[A1].stuck


# -- the heartbeat thread says when the loop runs again ------------------------------------


@pytest.mark.timeout(30)
def test_the_heartbeat_thread_says_stuck_then_twice_that_the_loop_runs_again() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    target = Location("127.0.0.1", receiver.getsockname()[1])
    net = SimpleNamespace(location=Location("127.0.0.1", 1), sid="sid", ping_interval=0.2)
    key = b"k" * 32
    liveness = SimpleNamespace(
        net=net, host="127.0.0.1", loop_ran=time.monotonic() - 5, targets=(target,), key=key
    )
    made = HeartbeatThread(liveness, 0.0, None)  # type: ignore[arg-type]
    made.start()
    running = threading.Event()

    def beat() -> None:  # the loop's beat, once it runs again
        while running.is_set():
            liveness.loop_ran = time.monotonic()
            time.sleep(0.02)

    beats = threading.Thread(target=beat, daemon=True)
    try:
        first = decode_liveness(receiver.recv(2048), key, time.time())
        assert first.kind == "alive" and first.stuck >= 4.5
        running.set()
        beats.start()
        stucks = [decode_liveness(receiver.recv(2048), key, time.time()).stuck]
        while stucks[-1] != 0.0:  # notes already on their way, then the recovery note
            stucks.append(decode_liveness(receiver.recv(2048), key, time.time()).stuck)
        again = decode_liveness(receiver.recv(2048), key, time.time())
        assert again.kind == "alive" and again.stuck == 0.0  # once more, at the next beat
        receiver.settimeout(1.0)  # a loaded machine: ample for 5 more beats of 0.2 s
        with pytest.raises(TimeoutError):
            receiver.recv(2048)  # while the loop runs, the thread is quiet
    finally:
        running.clear()
        made.stop()
        made.join(10)
        receiver.close()


def test_the_status_snapshot_shows_how_long_a_loop_has_been_stuck() -> None:
    state, clock = ready(A1, A2)
    note(state, A1, 1.0)
    clock.advance(2)
    view = {proc["location"]: proc["stuck"] for proc in snapshot(state, {})["procs"]}
    assert view == {str(A1): 3.0, str(A2): None}
    rows = format_table(snapshot(state, {})).splitlines()  # ``discoro status``
    (row_a1,) = [row for row in rows if row.startswith(str(A1))]
    (row_a2,) = [row for row in rows if row.startswith(str(A2))]
    assert "initialized (stuck 3 s)" in row_a1 and "stuck" not in row_a2


def test_a_loop_stuck_again_and_again_is_logged_at_info_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state, clock = ready(A1, A2)
    with caplog.at_level(logging.DEBUG, logger="discoro"):
        for _ in range(31):  # a job that blocks for a second between yields, 62 s
            note(state, A1, 1.0)
            clock.advance(1)
            note(state, A1, 0.0)
            clock.advance(1)
    said = [(r.levelno, r.getMessage()) for r in caplog.records if str(A1) in r.getMessage()]
    assert len(said) == 62  # every change, once
    loud = [text for level, text in said if level == logging.INFO]
    assert len(loud) == 4  # at 0 s and at 60 s: the start and the end of each
    assert "busy in user code" in loud[0] and "runs again" in loud[1]
