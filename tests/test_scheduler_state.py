"""The scheduler's state machine, driven by events without a network (DESIGN decision 9)."""

from __future__ import annotations

from typing import Any

import pytest

from discoro.cluster import protocol as p
from discoro.cluster.scheduler_state import (
    PeerLost,
    ProcFound,
    ProcState,
    SchedulerState,
    Send,
    Tick,
)
from discoro.cluster.status import Status, StatusMessage
from discoro.net.location import Location
from testing import ManualClock


class Handle:
    """Stands for a coroutine handle: a name and a location."""

    def __init__(self, name: str, location: Location | None = None) -> None:
        self.name = name
        self.location = location
        self._id = id(self)

    def __repr__(self) -> str:
        return self.name


ME = Handle("scheduler")
STATUS = Handle("status")
ROUTER = Handle("router", Location("127.0.0.9", 9))


def spec(uid: str = "c1", status: Any = STATUS, router: Any = ROUTER) -> p.ComputationSpec:
    return p.ComputationSpec(uid, b"", [], [], status, router, 1.0, 10.0)


def loc(host: int, port: int) -> Location:
    return Location(f"127.0.0.{host}", port)


def sent(actions: list[Send], to: Any) -> list[Any]:
    return [action.message for action in actions if action.to is to]


def statuses(actions: list[Send]) -> list[tuple[int, Any]]:
    return [(m.status, m.info) for m in sent(actions, STATUS) if isinstance(m, StatusMessage)]


def ready_state(*locations: Location) -> tuple[SchedulerState, dict[Location, Handle]]:
    state = SchedulerState(ME)
    servers = {location: Handle(f"server{location}", location) for location in locations}
    for location, server in servers.items():
        state.handle(ProcFound(location, server))
    state.handle(p.Submit(spec()))
    for location in locations:
        state.handle(p.SetupDone(location, "c1", incarnation=state.procs[location].incarnation))
    return state, servers


def test_submitted_computation_becomes_current_and_sets_up_every_process() -> None:
    state = SchedulerState(ME)
    a, b = loc(1, 1), loc(1, 2)
    server_a, server_b = Handle("a", a), Handle("b", b)
    # without a computation, only Watch (idle pulses for status pages)
    assert state.handle(ProcFound(a, server_a)) == [Send(server_a, p.Watch(ME))]
    state.handle(ProcFound(b, server_b))
    actions = state.handle(p.Submit(spec()))
    assert sent(actions, ROUTER) == [p.Scheduled("c1")]
    assert [type(m) for m in sent(actions, server_a)] == [p.Setup]
    assert [type(m) for m in sent(actions, server_b)] == [p.Setup]
    assert statuses(actions) == [
        (Status.NodeDiscovered, "127.0.0.1"),
        (Status.ProcDiscovered, a),
        (Status.ProcDiscovered, b),
    ]
    first = statuses(state.handle(p.SetupDone(a, "c1", incarnation=state.procs[a].incarnation)))
    assert first == [(Status.NodeInitialized, "127.0.0.1"), (Status.ProcInitialized, a)]
    assert statuses(state.handle(p.SetupDone(b, "c1", incarnation=state.procs[b].incarnation))) == [
        (Status.ProcInitialized, b)
    ]


def test_second_computation_waits_until_the_first_closes() -> None:
    state, servers = ready_state(loc(1, 1))
    router2, status2 = Handle("router2"), Handle("status2")
    actions = state.handle(p.Submit(spec("c2", status=status2, router=router2)))
    assert sent(actions, router2) == []  # queued
    actions = state.handle(p.CloseRequest("c1", 7, ROUTER))
    assert sent(actions, ROUTER) == [p.Reply(7, 0)]
    assert sent(actions, router2) == [p.Scheduled("c2")]
    server_messages = sent(actions, servers[loc(1, 1)])
    assert [type(m) for m in server_messages] == [p.Close, p.Setup]
    # the closed computation's status coroutine hears the close (later-versions D5)
    assert statuses(actions) == [
        (Status.ServerClosed, loc(1, 1)),
        (Status.NodeClosed, "127.0.0.1"),
        (Status.ComputationClosed, None),
    ]
    assert [m.status for m in sent(actions, status2)] == [
        Status.NodeDiscovered,
        Status.ProcDiscovered,
    ]


def test_run_goes_to_the_least_loaded_process_of_the_least_loaded_node() -> None:
    a1, a2, b1 = loc(1, 1), loc(1, 2), loc(2, 1)
    state, _ = ready_state(a1, a2, b1)
    chosen = []
    for rid in range(1, 7):
        actions = state.handle(p.RunRequest("c1", rid, ("any",), "f", "f", b"", ROUTER))
        [(target, message)] = [(a.to, a.message) for a in actions]
        assert isinstance(message, p.Run) and message.reply_to is ROUTER
        chosen.append(target.location)
    # loads even out: every process gets two of six
    assert sorted(chosen.count(location) for location in (a1, a2, b1)) == [2, 2, 2]


def test_run_each_fans_out_and_reports_how_many() -> None:
    state, _ = ready_state(loc(1, 1), loc(1, 2), loc(2, 1))
    per_node = state.handle(p.RunRequest("c1", 1, ("each_node",), "f", "f", b""))
    assert len(per_node) == 2 and {a.message.fanout for a in per_node} == {2}
    per_proc = state.handle(p.RunRequest("c1", 2, ("each_proc",), "f", "f", b""))
    assert len(per_proc) == 3
    on_node = state.handle(p.RunRequest("c1", 3, ("node_procs", "127.0.0.1"), "f", "f", b""))
    assert {a.to.location for a in on_node} == {loc(1, 1), loc(1, 2)}


def test_run_for_a_computation_that_is_not_current_is_refused() -> None:
    state, _ = ready_state(loc(1, 1))
    other = Handle("other")
    [reply] = sent(state.handle(p.RunRequest("zz", 1, ("any",), "f", "f", b"", other)), other)
    assert reply.value is None and reply.error


def test_lost_process_reports_its_running_coroutines_to_the_client_router() -> None:
    a, b = loc(1, 1), loc(2, 1)
    state, _ = ready_state(a, b)
    job = Handle("job", a)
    state.handle(p.JobStarted(a, "c1", 1, job, "f", 0.0, incarnation=state.procs[a].incarnation))
    actions = state.handle(PeerLost(a))
    [notice] = [m for m in sent(actions, ROUTER) if isinstance(m, p.WrittenOff)]
    assert notice.coros == [job] and notice.location == a and notice.incarnation == 1
    assert "connection was lost" in notice.reason
    assert statuses(actions) == [
        (Status.ProcDisconnected, a),
        (Status.NodeDisconnected, "127.0.0.1"),
    ]
    assert state.procs[a].state is ProcState.DISCONNECTED
    # a process that comes back is used again
    again = state.handle(ProcFound(a, Handle("a-again", a)))
    assert [type(m) for m in sent(again, state.procs[a].server)] == [p.Watch, p.Setup]


def test_silent_process_is_lost_after_five_pulse_intervals() -> None:
    a = loc(1, 1)
    state, _ = ready_state(a)
    heard = state.procs[a].last_heard
    assert statuses(state.handle(Tick(heard + 4.0))) == []
    assert statuses(state.handle(Tick(heard + 5.5)))[0] == (Status.ProcDisconnected, a)


def test_last_heard_is_read_from_the_state_clock() -> None:
    """With the scheduler's clock (a manual one here), a pulse keeps a process alive for 5
    intervals of that clock, whatever the real time does."""
    clock = ManualClock(100.0)
    a = loc(1, 1)
    state = SchedulerState(ME, clock=clock)
    state.handle(ProcFound(a, Handle("server", a)))
    state.handle(p.Submit(spec()))
    assert state.procs[a].last_heard == 100.0
    clock.advance(4.0)
    state.handle(p.ServerPulse(a, "c1", 0, incarnation=state.procs[a].incarnation))
    assert state.procs[a].last_heard == 104.0
    assert statuses(state.handle(Tick(clock() + 4.0))) == []
    assert statuses(state.handle(Tick(clock() + 5.5)))[0] == (Status.ProcDisconnected, a)


def test_every_tick_pulses_the_client() -> None:
    state, _ = ready_state(loc(1, 1))
    assert p.Pulse("c1") in sent(state.handle(Tick(0.0)), ROUTER)


def test_idle_close_of_every_process_closes_the_computation() -> None:
    a, b = loc(1, 1), loc(2, 1)
    state, _ = ready_state(a, b)
    assert statuses(
        state.handle(p.ServerClosed(a, "c1", idle=True, incarnation=state.procs[a].incarnation))
    ) == [
        (Status.ProcClosed, a),
        (Status.NodeClosed, "127.0.0.1"),
    ]
    last = statuses(
        state.handle(p.ServerClosed(b, "c1", idle=True, incarnation=state.procs[b].incarnation))
    )
    assert last[:2] == [(Status.ProcClosed, b), (Status.NodeClosed, "127.0.0.2")]
    assert last[2][0] == Status.ComputationClosed
    assert state.current is None


def test_client_lost_closes_its_computation_and_starts_the_next() -> None:
    state, _ = ready_state(loc(1, 1))
    router2 = Handle("router2")
    state.handle(p.Submit(spec("c2", router=router2)))
    actions = state.handle(PeerLost(ROUTER.location))
    assert sent(actions, router2) == [p.Scheduled("c2")]
    assert state.current is not None and state.current.spec.uid == "c2"


def test_lists_of_nodes_and_processes() -> None:
    a, b = loc(1, 1), loc(2, 1)
    state, _ = ready_state(a, b)
    [reply] = sent(state.handle(p.ListRequest("c1", 3, "nodes", ROUTER)), ROUTER)
    assert reply.value == ["127.0.0.1", "127.0.0.2"]
    [reply] = sent(state.handle(p.ListRequest("c1", 4, "procs", ROUTER)), ROUTER)
    assert set(reply.value) == {a, b}
    [reply] = sent(state.handle(p.ListRequest("other", 5, "procs", ROUTER)), ROUTER)
    assert reply.value == []


def test_lifecycles_are_tables_and_refuse_unplanned_events_loudly() -> None:
    from discoro.cluster.scheduler_procs import LifecycleError, Proc, ProcEvent, advance
    from discoro.cluster.scheduler_state import UnknownEvent

    proc = Proc(loc(1, 1), Handle("server"))
    with pytest.raises(LifecycleError, match="no transition for 'setup done' in state 'disc"):
        advance(proc, ProcEvent.SETUP_DONE)
    assert advance(proc, ProcEvent.SETUP) is ProcState.INITIALIZING
    assert advance(proc, ProcEvent.WRITTEN_OFF) is ProcState.DISCONNECTED
    with pytest.raises(LifecycleError):
        advance(proc, ProcEvent.WRITTEN_OFF)  # once
    from discoro.cluster.scheduler_procs import JobEvent, JobPlace, job_moves

    assert job_moves(JobPlace.RUNNING, JobEvent.WRITTEN_OFF) is JobPlace.LOST
    with pytest.raises(LifecycleError, match="no transition for 'done' at 'lost'"):
        job_moves(JobPlace.LOST, JobEvent.DONE)  # a job reported lost never ends again
    state, _ = ready_state(loc(1, 1))
    assert state.current is not None and state.current.state.value == "current"
    with pytest.raises(UnknownEvent, match="no handler for str"):
        state.handle("not an event")


def test_a_written_off_process_is_fenced_and_rejoins_as_a_new_incarnation() -> None:
    a = loc(1, 1)
    state, servers = ready_state(a)
    job = Handle("job", a)
    state.handle(p.JobStarted(a, "c1", 1, job, "f", 0.0, incarnation=1))
    state.handle(PeerLost(a))  # written off; its link comes back before it noticed
    late = state.handle(p.JobDone(a, "c1", job._id, incarnation=1), now=10.0)
    assert [type(m) for m in sent(late, servers[a])] == [p.Fenced]
    assert state.handle(p.ServerPulse(a, "c1", 1, incarnation=1), now=10.5) == []  # told once
    again = state.handle(p.ServerPulse(a, "c1", 1, incarnation=1), now=11.5)
    assert sent(again, servers[a]) == [p.Fenced("c1", 1, "its connection was lost")]
    rejoined = state.handle(p.ServerClosed(a, "c1", False, 1, fenced=True), now=12.0)
    [setup] = [m for m in sent(rejoined, servers[a]) if isinstance(m, p.Setup)]
    assert setup.incarnation == 2 and state.procs[a].state is ProcState.INITIALIZING
    assert (Status.ProcDiscovered, a) in statuses(rejoined)
    state.handle(p.SetupDone(a, "c1", incarnation=2))
    assert state.procs[a].state is ProcState.INITIALIZED
