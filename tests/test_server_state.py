"""`ServerState` and `PulseTracker`: the server process's rules as tables, without I/O."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from discoro.cluster import server_lifecycle as lc
from discoro.cluster.server_lifecycle import Phase
from discoro.cluster.server_state import PulseTracker, ServerState, clamp_pulse_interval


def job(coro_id: int) -> SimpleNamespace:
    return SimpleNamespace(_id=coro_id)


def installed(
    zombie_period: float | None = None, now: float = 0.0, incarnation: int = 1
) -> ServerState:
    state = ServerState()
    assert state.handle(lc.SetupAsked("A", incarnation, now)) == [
        lc.InstallComputation(incarnation)
    ]
    record = state.record("A", "scheduler", 1, zombie_period, None, now, incarnation)
    assert state.handle(lc.SetupSucceeded(record, now)) == [lc.AnswerSetup(incarnation)]
    assert state.phase is Phase.INSTALLED
    return state


def kinds(actions: list[lc.Action]) -> list[str]:
    return [type(action).__name__ for action in actions]


@pytest.mark.parametrize(
    ("phase", "uid", "incarnation", "expected"),
    [
        (Phase.IDLE, "A", 1, [lc.InstallComputation(1)]),
        (Phase.INSTALLED, "A", 1, [lc.AnswerSetup(1)]),  # a repeated Setup
        (Phase.INSTALLED, "B", 2, [lc.AnswerSetup(2, "busy with computation A")]),
        (Phase.QUITTING, "A", 1, [lc.AnswerSetup(1, "the server process is quitting")]),
    ],
)
def test_setup_by_phase(phase: Phase, uid: str, incarnation: int, expected: list[object]) -> None:
    state = installed() if phase is not Phase.IDLE else ServerState()
    if phase is Phase.QUITTING:
        state.handle(lc.QuitAsked(0))
    assert state.handle(lc.SetupAsked(uid, incarnation, 0)) == expected


def test_a_higher_incarnation_of_the_installed_computation_closes_it_fenced_first() -> None:
    state = installed(incarnation=3)
    state.handle(lc.JobStarted(job(1), 1))
    actions = state.handle(lc.SetupAsked("A", 4, 2))
    assert kinds(actions) == ["CloseComputation", "InstallComputation"]
    close = actions[0]
    assert isinstance(close, lc.CloseComputation)
    assert (close.how, close.record.incarnation, list(close.record.jobs)) == ("fenced", 3, [1])
    assert state.current is None and state.phase is Phase.IDLE


def test_fenced_closes_only_its_own_incarnation() -> None:
    state = installed(incarnation=3)
    assert state.handle(lc.FencedAsked(2, "older", 1)) == []
    [close] = state.handle(lc.FencedAsked(3, "written off", 1))
    assert isinstance(close, lc.CloseComputation) and (close.how, close.reason) == (
        "fenced",
        "written off",
    )
    assert state.handle(lc.FencedAsked(3, "again", 2)) == []  # nothing installed now


def test_run_by_phase() -> None:
    state = ServerState()
    assert state.handle(lc.RunAsked("A", 0)) == [lc.RefuseRun("no computation is installed")]
    state = installed()
    assert state.handle(lc.RunAsked("A", 0)) == [lc.StartJob()]
    [refusal] = state.handle(lc.RunAsked("B", 0))
    assert isinstance(refusal, lc.RefuseRun) and "not installed" in refusal.reason
    state.handle(lc.QuitAsked(0))
    assert state.handle(lc.RunAsked("A", 0)) == [lc.RefuseRun("the server process is quitting")]


def test_jobs_and_idle_time() -> None:
    state = installed(zombie_period=10, now=0)
    assert state.wait_time(4) == 6 and state.handle(lc.Tick(9.9)) == []
    state.handle(lc.JobStarted(job(1), 1))
    state.handle(lc.JobStarted(job(2), 1))
    assert state.ncoros == 2 and state.wait_time(50) is None and state.handle(lc.Tick(50)) == []
    assert kinds(state.handle(lc.JobEnded(1, 60))) == ["ReportJobDone"]
    assert state.handle(lc.Tick(100)) == []
    assert state.handle(lc.JobEnded(1, 61)) == []  # already gone
    assert kinds(state.handle(lc.JobEnded(2, 70))) == ["ReportJobDone"]
    assert state.handle(lc.Tick(79)) == []
    [close] = state.handle(lc.Tick(80))
    assert isinstance(close, lc.CloseComputation) and close.how == "idle"


def test_no_zombie_period_never_closes() -> None:
    for period in (None, 0):
        state = installed(zombie_period=period)
        assert state.wait_time(1e9) is None and state.handle(lc.Tick(1e9)) == []


def test_close_quit_and_a_lost_scheduler() -> None:
    state = installed()
    state.handle(lc.JobStarted(job(1), 0))
    assert state.handle(lc.CloseAsked("other", 0)) == [] and state.current is not None
    state.handle(lc.QuitAsked(0))
    assert state.quitting and not state.may_exit()
    [close] = state.handle(lc.SchedulerGone("A", "it went offline", 1))
    assert isinstance(close, lc.CloseComputation) and (close.how, close.reason) == (
        "lost",
        "it went offline",
    )
    assert state.current is None and state.may_exit() and state.phase is Phase.QUITTING
    assert state.handle(lc.CloseAsked("A", 2)) == []


def test_an_event_without_a_rule_is_refused_loudly() -> None:
    state = ServerState()
    with pytest.raises(lc.UnknownServerEvent, match="phase 'idle': no rule for JobStarted"):
        state.handle(lc.JobStarted(job(1), 0))
    with pytest.raises(lc.UnknownServerEvent, match="no rule for str"):
        state.handle("not an event")


def test_every_phase_has_a_rule_for_every_event_but_the_impossible_ones() -> None:
    events = {event for _, event in lc.TRANSITIONS}
    missing = {(phase, event) for phase in Phase for event in events} - set(lc.TRANSITIONS)
    assert missing == {
        (Phase.INSTALLED, lc.SetupSucceeded),  # set up only from idle
        (Phase.QUITTING, lc.SetupSucceeded),  # a quitting process refuses Setup
        (Phase.IDLE, lc.JobStarted),  # runs are refused unless installed
        (Phase.QUITTING, lc.JobStarted),
    }


def test_pulse_tracker_gives_up_after_five_intervals() -> None:
    tracker = PulseTracker(2.0, now=0.0)
    assert not tracker.given_up(10.0)
    assert tracker.given_up(10.1)
    tracker.delivered(10.1)
    assert not tracker.given_up(20.0) and tracker.given_up(20.2)


def test_pulse_tracker_does_not_count_its_own_stall() -> None:
    """A failed pulse whose step the shell saw come far too late (this process's loop was
    blocked by a job) gives the scheduler a fresh window."""
    tracker = PulseTracker(1.0, now=0.0)
    assert not tracker.given_up(1.0)
    assert not tracker.given_up(31.0, stalled=True)  # blocked for 30 s: not the scheduler
    assert not any(tracker.given_up(31.0 + t) for t in (1.0, 2.0, 3.0, 4.0, 5.0))
    assert tracker.given_up(36.5)  # silent for more than five intervals since the stall
    assert tracker.given_up(40.0, stalled=False)


@pytest.mark.parametrize(("given", "used"), [(0, 1), (0.2, 1), (5, 5), (1000, 100)])
def test_pulse_interval_is_clamped(given: float, used: float) -> None:
    assert clamp_pulse_interval(given) == used
