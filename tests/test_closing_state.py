"""``close(await_async)`` in the scheduler's state machine (later-versions D4, D5), without a
network: the close waits for CPU jobs (and with ``await_async`` every job), reports what it
waits for every `MsgTimeout`, then sends the close-time statuses before it answers."""

from __future__ import annotations

from discoro.cluster import protocol as p
from discoro.cluster.constants import MsgTimeout
from discoro.cluster.nodeinfo import DiscoroNodeInfo
from discoro.cluster.scheduler_state import PeerLost, SchedulerState, Send, Tick
from discoro.cluster.status import Status, StatusMessage
from test_scheduler_state import ROUTER, STATUS, Handle, loc, sent, spec
from test_slots_state import A1, A2, B1, place, ready, request
from testing import ManualClock


def close(await_async: bool = False, rid: int = 9, force: bool = False) -> p.CloseRequest:
    return p.CloseRequest("c1", rid, ROUTER, await_async, force)


def replies(actions: list[Send]) -> list[p.Reply]:
    return [m for m in sent(actions, ROUTER) if isinstance(m, p.Reply)]


def closes(state: SchedulerState, actions: list[Send]) -> list[object]:
    """Where the actions send `Close` (the processes' locations)."""
    return [action.to.location for action in actions if isinstance(action.message, p.Close)]


def job_done(state: SchedulerState, target: object, rid: int) -> list[Send]:
    job = next(j for j in state.procs[target].jobs.values() if j.rid == rid)
    incarnation = state.procs[target].incarnation
    return state.handle(p.JobDone(target, "c1", job.coro._id, incarnation))


def test_close_waits_for_cpu_jobs_then_closes_with_statuses_before_its_answer() -> None:
    state = ready(A1, A2, B1)
    place(state, 1, "cpu", ("proc", A1))
    place(state, 2, "result", ("proc", B1))
    actions = state.handle(close())
    assert replies(actions) == [] and closes(state, actions) == []
    [waiting] = [m for m in sent(actions, ROUTER) if isinstance(m, p.CloseWaiting)]
    assert len(waiting.coros) == 2 and "job1" in waiting.coros[0]
    [refused] = replies(state.handle(request(3, "cpu")))
    assert refused.error == "the computation is closing"
    assert replies(job_done(state, A1, 1)) == []  # one CPU job still runs
    actions = job_done(state, B1, 2)
    assert sorted(map(str, closes(state, actions))) == sorted(map(str, (A1, A2, B1)))
    order = [
        (m.status, m.info) if isinstance(m, StatusMessage) else m
        for a in actions
        for m in [a.message]
        if a.to is STATUS or a.to is ROUTER
    ]
    assert order == [
        (Status.ServerClosed, A1),
        (Status.ServerClosed, A2),
        (Status.ServerClosed, B1),
        (Status.NodeClosed, "127.0.0.1"),
        (Status.NodeClosed, "127.0.0.2"),
        (Status.ComputationClosed, None),
        p.Reply(9, 0),
    ]
    node_closed = [
        a.message.info for a in actions if getattr(a.message, "status", 0) == Status.NodeClosed
    ]
    assert isinstance(node_closed[0], DiscoroNodeInfo) and node_closed[0].cpus == 2
    assert state.current is None


def test_async_jobs_are_terminated_by_a_close_without_await_async() -> None:
    state = ready(A1)
    place(state, 1, "async")
    actions = state.handle(close())
    assert closes(state, actions) == [A1]  # the server's Close terminates the job
    assert replies(actions) == [p.Reply(9, 0)]


def test_await_async_waits_for_async_jobs_too() -> None:
    state = ready(A1)
    place(state, 1, "async")
    assert replies(state.handle(close(await_async=True))) == []
    assert replies(job_done(state, A1, 1)) == [p.Reply(9, 0)]


def test_a_waiting_close_reports_the_jobs_every_msg_timeout() -> None:
    state = ready(A1)
    clock = state.clock
    assert isinstance(clock, ManualClock)
    place(state, 1, "cpu")
    start = clock()
    state.handle(close())

    def reports(now: float) -> list[object]:
        clock.advance(now - clock())
        pulse = p.ServerPulse(A1, "c1", 1, incarnation=state.procs[A1].incarnation)
        actions = state.handle(pulse)  # it stays alive meanwhile
        actions += state.handle(Tick(now))
        return [m for m in sent(actions, ROUTER) if isinstance(m, p.CloseWaiting)]

    assert reports(start + MsgTimeout - 1) == []
    assert len(reports(start + MsgTimeout)) == 1
    assert reports(start + MsgTimeout + 1) == []
    assert len(reports(start + 2 * MsgTimeout)) == 1


def test_a_forced_close_ends_the_wait_and_answers_every_close() -> None:
    state = ready(A1)
    place(state, 1, "cpu")
    assert replies(state.handle(close(rid=9))) == []
    actions = state.handle(close(rid=10, force=True))
    assert closes(state, actions) == [A1]
    assert replies(actions) == [p.Reply(9, 0), p.Reply(10, 0)]


def test_a_lost_process_does_not_hold_the_close() -> None:
    state = ready(A1, A2)
    place(state, 1, "cpu", ("proc", A1))
    state.handle(close())
    actions = state.handle(PeerLost(A1))
    assert replies(actions) == [p.Reply(9, 0)]
    assert closes(state, actions) == [A2]


def test_a_lost_client_closes_at_once_without_statuses() -> None:
    state = ready(A1)
    place(state, 1, "cpu")
    state.handle(close())
    actions = state.handle(PeerLost(ROUTER.location))
    assert closes(state, actions) == [A1]
    assert sent(actions, STATUS) == []
    assert state.current is None


def test_the_next_computation_is_announced_again_on_every_node() -> None:
    """NodeDiscovered for every node and ServerDiscovered for every server before setup, for
    the second computation too (its processes were closed by the first)."""
    state = ready(A1, A2, B1)
    status2, router2 = Handle("status2"), Handle("router2")
    state.handle(p.Submit(spec("c2", status=status2, router=router2)))
    actions = state.handle(close())
    announced = [(m.status, m.info) for m in sent(actions, status2)]
    assert announced == [
        (Status.NodeDiscovered, "127.0.0.1"),
        (Status.ServerDiscovered, A1),
        (Status.ServerDiscovered, A2),
        (Status.NodeDiscovered, "127.0.0.2"),
        (Status.ServerDiscovered, B1),
    ]
    assert isinstance(announced[0][1], DiscoroNodeInfo)
    assert loc(1, 1) == A1
