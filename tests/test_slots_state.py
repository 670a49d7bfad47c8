"""CPU slots and the placement rules of later-versions D3 in the scheduler's state machine,
without a network: ``run``/``run_at`` prefer a free slot but never wait for one,
``run_result*`` wait for one, ``run_async*`` never take one, and a held request never stalls
a later one."""

from __future__ import annotations

from discoro.cluster import protocol as p
from discoro.cluster.scheduler_state import PeerLost, SchedulerState, Send, Tick
from test_run_waiting import found, runs
from test_scheduler_state import ME, ROUTER, Handle, loc, sent, spec
from testing import ManualClock

A1, A2, B1 = loc(1, 1), loc(1, 2), loc(2, 1)


def ready(*locations: object) -> SchedulerState:
    state = SchedulerState(ME, clock=ManualClock())
    found(state, *locations)
    state.handle(p.Submit(spec()))
    for location in locations:
        state.handle(p.SetupDone(location, "c1", incarnation=state.procs[location].incarnation))
    return state


def request(rid: int, kind: str, where: tuple[object, ...] = ("any",)) -> p.RunRequest:
    return p.RunRequest("c1", rid, where, "f", "f", b"", ROUTER, {}, kind)


def place(
    state: SchedulerState, rid: int, kind: str, where: tuple[object, ...] = ("any",)
) -> object:
    """Where request ``rid`` went (None: held or refused); the job is started there."""
    actions = state.handle(request(rid, kind, where))
    placed = runs(actions)
    if not placed:
        return None
    [(target, message)] = placed
    assert message.kind == kind
    incarnation = state.procs[target].incarnation
    job = Handle(f"job{rid}", target)
    state.handle(p.JobStarted(target, "c1", rid, job, "f", 0.0, "", kind, incarnation))
    return target


def end(state: SchedulerState, target: object, rid: int) -> list[Send]:
    job = next(j for j in state.procs[target].jobs.values() if j.rid == rid)
    incarnation = state.procs[target].incarnation
    return state.handle(p.JobDone(target, "c1", job.coro._id, incarnation))


def test_cpu_runs_take_free_slots_first_then_share_the_least_loaded() -> None:
    state = ready(A1, A2, B1)
    first = [place(state, rid, "cpu") for rid in (1, 2, 3)]
    assert sorted(map(str, first)) == sorted(map(str, (A1, A2, B1)))  # one per free slot
    assert all(proc.cpu_busy for proc in state.procs.values())
    fourth = place(state, 4, "cpu")  # no free slot: run never waits (3.5)
    assert fourth is not None


def test_a_cpu_run_prefers_the_least_cpu_loaded_node() -> None:
    state = ready(A1, A2, B1)
    assert place(state, 1, "cpu", ("proc", A1)) == A1
    # node 1 has a busy slot (1 of 2), node 2 none: the run goes to node 2
    assert place(state, 2, "cpu") == B1
    # now node 1 (1/2 busy) is less loaded than node 2 (1/1): its free process
    assert place(state, 3, "cpu") == A2


def test_run_at_a_node_prefers_its_free_slot_and_never_waits() -> None:
    state = ready(A1, A2)
    assert place(state, 1, "cpu", ("proc", A2)) == A2
    assert place(state, 2, "cpu", ("node", "127.0.0.1")) == A1  # the free one
    assert place(state, 3, "cpu", ("node", "127.0.0.1")) is not None  # busy: goes anyway


def test_run_result_waits_for_a_free_slot_in_arrival_order() -> None:
    state = ready(A1)
    assert place(state, 1, "cpu") == A1
    assert place(state, 2, "result") is None  # slot taken: held
    assert place(state, 3, "result") is None
    assert [held.request.rid for held in state.waiting] == [2, 3]
    [(target, message)] = runs(end(state, A1, 1))
    assert target == A1 and message.rid == 2 and message.kind == "result"
    assert [held.request.rid for held in state.waiting] == [3]


def test_a_run_result_waiting_for_a_busy_slot_is_not_reported() -> None:
    state = ready(A1)
    place(state, 1, "cpu")
    assert place(state, 2, "result") is None
    clock = state.clock
    assert isinstance(clock, ManualClock)
    clock.advance(11)  # past the timeout (10 s), the process still pulsing
    pulse = p.ServerPulse(A1, "c1", 1, incarnation=state.procs[A1].incarnation)
    later = state.handle(pulse) + state.handle(Tick(clock()))
    assert not [m for m in sent(later, ROUTER) if isinstance(m, p.RunWaits)]
    assert [held.request.rid for held in state.waiting] == [2]


def test_run_result_at_a_busy_server_waits_and_at_an_unknown_one_fails_at_once() -> None:
    state = ready(A1, A2)
    assert place(state, 1, "cpu", ("proc", A1)) == A1
    assert place(state, 2, "result", ("proc", A1)) is None  # waits for A1's slot
    assert place(state, 3, "result", ("node", "127.0.0.1")) == A2  # a free slot of the node
    assert place(state, 4, "result", ("node", "127.0.0.1")) is None  # none free now: waits
    [reply] = sent(state.handle(request(5, "result", ("proc", loc(9, 9)))), ROUTER)
    assert reply.value is None and "not a known server process" in reply.error
    assert [held.request.rid for held in state.waiting] == [2, 4]


def test_a_held_request_never_stalls_a_later_one_that_can_go() -> None:
    state = ready(A1, A2)
    place(state, 1, "cpu", ("proc", A1))
    assert place(state, 2, "result", ("proc", A1)) is None  # held behind A1's job
    assert place(state, 3, "result", ("proc", A2)) == A2  # goes at once
    assert place(state, 4, "async", ("proc", A1)) == A1  # async: never waits for a slot
    assert place(state, 5, "cpu") is not None


def test_async_runs_never_take_a_slot() -> None:
    state = ready(A1)
    for rid in (1, 2, 3):
        assert place(state, rid, "async") == A1
    assert not state.procs[A1].cpu_busy
    assert place(state, 4, "result") == A1  # the slot is still free


def test_async_anywhere_prefers_a_node_with_a_free_slot() -> None:
    state = ready(A1, B1)
    place(state, 1, "cpu", ("proc", A1))
    assert place(state, 2, "async") == B1
    place(state, 3, "cpu", ("proc", B1))
    assert place(state, 4, "async") is not None  # every slot busy: still placed, no crash


def test_a_lost_server_ends_a_waiting_and_a_running_run_result() -> None:
    state = ready(A1, B1)
    place(state, 1, "result", ("proc", A1))
    assert place(state, 2, "result", ("proc", A1)) is None
    actions = state.handle(PeerLost(A1))
    to_router = sent(actions, ROUTER)
    assert p.JobLost(1, f"process {A1} was lost") in to_router
    [refusal] = [m for m in to_router if isinstance(m, p.Reply)]
    assert refusal.rid == 2 and refusal.value is None and "disconnected" in refusal.error
    assert state.waiting == []


def test_a_run_dispatched_to_a_server_lost_before_it_started_is_answered() -> None:
    state = ready(A1)
    assert runs(state.handle(request(1, "result")))  # dispatched, no JobStarted yet
    to_router = sent(state.handle(PeerLost(A1)), ROUTER)
    assert p.Reply(1, None, f"process {A1} was lost") in to_router


def test_run_without_target_and_run_result_wait_until_closed() -> None:
    state = SchedulerState(ME, clock=ManualClock())
    state.handle(p.Submit(spec()))
    state.handle(request(1, "cpu"))
    state.handle(request(2, "result"))
    state.handle(request(3, "async"))
    actions = state.handle(p.CloseRequest("c1", 9, ROUTER))
    replies = [(m.rid, m.error) for m in sent(actions, ROUTER) if isinstance(m, p.Reply)]
    closing = "the computation is closing"
    assert replies == [(1, closing), (2, closing), (3, closing), (9, "")]
