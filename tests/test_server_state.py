"""`ServerState` and `PulseTracker`: the server process's rules as tables, without I/O."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from discoro.cluster.server_state import PulseTracker, ServerState, clamp_pulse_interval


def job(coro_id: int) -> SimpleNamespace:
    return SimpleNamespace(_id=coro_id)


def installed(zombie_period: float | None = None, now: float = 0.0) -> ServerState:
    state = ServerState()
    state.install("A", "scheduler", 1, zombie_period, None, now)
    return state


@pytest.mark.parametrize(
    ("current", "quitting", "uid", "refused"),
    [
        (None, False, "A", None),
        ("A", False, "A", None),  # a repeated Setup of the installed computation
        ("A", False, "B", "busy with computation A"),
        (None, True, "A", "the server process is quitting"),
    ],
)
def test_setup_refusal(current: str | None, quitting: bool, uid: str, refused: str) -> None:
    state = ServerState()
    if current:
        state.install(current, "s", 1, None, None, 0)
    state.quitting = quitting
    assert state.setup_refusal(uid) == refused


def test_run_refusal() -> None:
    state = ServerState()
    assert state.run_refusal("A") == "no computation is installed"
    state.install("A", "s", 1, None, None, 0)
    assert state.run_refusal("A") is None
    assert "not installed" in (state.run_refusal("B") or "")
    state.quitting = True
    assert state.run_refusal("A") == "the server process is quitting"


def test_jobs_and_idle_time() -> None:
    state = installed(zombie_period=10, now=0)
    assert state.wait_time(4) == 6 and not state.zombie_due(9.9) and state.zombie_due(10)
    state.job_started(job(1))
    state.job_started(job(2))
    assert state.ncoros == 2 and state.wait_time(50) is None and not state.zombie_due(50)
    assert state.job_ended(1, 60) is not None and not state.zombie_due(100)
    assert state.job_ended(1, 61) is None  # already gone
    assert state.job_ended(2, 70) is not None
    assert not state.zombie_due(79) and state.zombie_due(80)


def test_no_zombie_period_never_closes() -> None:
    for period in (None, 0):
        state = installed(zombie_period=period)
        assert state.wait_time(1e9) is None and not state.zombie_due(1e9)


def test_close_and_quit() -> None:
    state = installed()
    state.job_started(job(1))
    assert state.close("other") is None and state.current is not None
    state.quitting = True
    assert not state.may_exit()
    closed = state.close("A")
    assert closed is not None and closed.uid == "A" and state.current is None
    assert state.may_exit() and state.close() is None


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
