"""Runs that no process can take yet wait in the scheduler's state machine, and fail with the
real reason (issue 11), without a network: a single run without a target waits for the first
ready process with no deadline (later-versions D3), a run at a node or process that is not
ready fails at once, a fan-out waits up to the computation's timeout."""

from __future__ import annotations

from discoro.cluster import protocol as p
from discoro.cluster.scheduler_state import ProcFound, SchedulerState, Tick
from test_scheduler_state import ME, ROUTER, Handle, loc, sent, spec
from testing import ManualClock

LATER = 1e12  # a Tick this far ahead is past every deadline (and every silence limit)


def new_state() -> tuple[SchedulerState, ManualClock]:
    clock = ManualClock()
    return SchedulerState(ME, clock=clock), clock


def after_timeout(clock: ManualClock) -> Tick:
    """A tick just past a run's deadline (10 s), while processes are not yet silent for
    too long (5 pulses of 5 s: `slow_spec`)."""
    clock.advance(11)
    return Tick(clock())


def slow_spec(uid: str = "c1") -> p.ComputationSpec:
    return p.ComputationSpec(uid, b"", [], [], None, ROUTER, 5.0, 10.0)


def run(rid: int, where: tuple[object, ...] = ("any",), uid: str = "c1") -> p.RunRequest:
    return p.RunRequest(uid, rid, where, "f", "f", b"", ROUTER)


def runs(actions: list[object]) -> list[tuple[object, p.Run]]:
    return [(a.to.location, a.message) for a in actions if isinstance(a.message, p.Run)]  # type: ignore[attr-defined]


def found(state: SchedulerState, *locations: object) -> dict[object, Handle]:
    servers = {location: Handle(f"server{location}", location) for location in locations}
    for location, server in servers.items():
        state.handle(ProcFound(location, server))
    return servers


def test_a_run_right_after_schedule_waits_for_the_first_ready_process() -> None:
    state, clock = new_state()
    a = loc(1, 1)
    found(state, a)
    state.handle(p.Submit(spec()))
    assert state.handle(run(5)) == []  # setting up: no answer yet, no failure
    clock.advance(3)
    assert runs(state.handle(Tick(clock()))) == []  # before its deadline: waits
    [(target, message)] = runs(
        state.handle(p.SetupDone(a, "c1", incarnation=state.procs[a].incarnation))
    )
    assert target == a and message.rid == 5 and message.reply_to is ROUTER


def test_a_run_waits_for_a_node_that_joins_late() -> None:
    state, _ = new_state()
    state.handle(p.Submit(spec()))
    assert sent(state.handle(run(1)), ROUTER) == []
    a = loc(1, 1)
    found(state, a)  # a node starts after the client scheduled
    [(target, _)] = runs(state.handle(p.SetupDone(a, "c1", incarnation=state.procs[a].incarnation)))
    assert target == a


def test_with_no_node_at_all_a_fanout_fails_at_its_deadline_and_a_run_keeps_waiting() -> None:
    state, clock = new_state()
    state.handle(p.Submit(spec()))
    state.handle(run(1))
    state.handle(run(2, ("each_proc",)))
    clock.advance(9)
    assert sent(state.handle(Tick(clock())), ROUTER) == [p.Pulse("c1")]
    to_router = sent(state.handle(Tick(LATER)), ROUTER)
    replies = [m for m in to_router if isinstance(m, p.Reply)]
    assert [(r.rid, r.value) for r in replies] == [(2, [])]
    assert replies[0].error.startswith("no node"), replies[0].error
    assert "waited 10 s" in replies[0].error
    assert [held.request.rid for held in state.waiting] == [1]
    # the run goes on waiting; the client is told why, once
    [report] = [m for m in to_router if isinstance(m, p.RunWaits)]
    assert report.rid == 1 and report.reason.startswith("no node"), report
    assert not [m for m in sent(state.handle(Tick(LATER + 1)), ROUTER) if isinstance(m, p.RunWaits)]
    a = loc(1, 1)
    found(state, a)  # much later, a node joins: the run goes there
    done = p.SetupDone(a, "c1", incarnation=state.procs[a].incarnation)
    [(target, message)] = runs(state.handle(done))
    assert target == a and message.rid == 1


def test_a_run_at_a_target_that_is_not_ready_fails_at_once_saying_why() -> None:
    state, _ = new_state()
    a = loc(1, 1)
    found(state, a)
    state.handle(p.Submit(slow_spec()))
    replies = {}
    for rid, where in (
        (1, ("node", "127.0.0.7")),
        (2, ("node", "127.0.0.1")),
        (3, ("proc", a)),
        (4, ("proc", loc(1, 9))),
    ):
        [reply] = sent(state.handle(run(rid, where)), ROUTER)
        replies[rid] = reply
    assert all(reply.value is None for reply in replies.values())
    assert replies[1].error == "node 127.0.0.7 is not a known node"
    assert replies[2].error == "node 127.0.0.1 has no initialized server process"
    assert replies[3].error == f"server process {a} is initializing, not initialized"
    assert replies[4].error == f"{loc(1, 9)} is not a known server process"


def test_a_fanout_names_the_process_that_never_gets_ready() -> None:
    state, clock = new_state()
    found(state, loc(1, 1))
    state.handle(p.Submit(slow_spec()))
    state.handle(run(1, ("each_proc",)))
    state.handle(run(2, ("node_procs", "127.0.0.7")))
    actions = state.handle(after_timeout(clock))
    replies = {m.rid: m for m in sent(actions, ROUTER) if isinstance(m, p.Reply)}
    assert "no process is ready (1 initializing)" in replies[1].error
    assert "no node 127.0.0.7" in replies[2].error


def test_run_procs_waits_until_every_process_has_finished_its_setup() -> None:
    state, _ = new_state()
    a, b = loc(1, 1), loc(1, 2)
    found(state, a, b)
    state.handle(p.Submit(spec()))
    assert runs(state.handle(p.SetupDone(a, "c1", incarnation=state.procs[a].incarnation))) == []
    assert runs(state.handle(run(3, ("each_proc",)))) == []  # b is still initializing
    fanned = runs(state.handle(p.SetupDone(b, "c1", incarnation=state.procs[b].incarnation)))
    assert sorted(str(target) for target, _ in fanned) == sorted([str(a), str(b)])
    assert {message.fanout for _, message in fanned} == {2}


def test_at_its_deadline_a_fanout_goes_to_whatever_is_ready() -> None:
    state, clock = new_state()
    a, b = loc(1, 1), loc(1, 2)
    found(state, a, b)
    state.handle(p.Submit(slow_spec()))
    state.handle(p.SetupDone(a, "c1", incarnation=state.procs[a].incarnation))
    state.handle(run(3, ("each_proc",)))
    [(target, message)] = runs(state.handle(after_timeout(clock)))
    assert target == a and message.fanout == 1


def test_waiting_runs_fail_when_the_computation_closes() -> None:
    state, _ = new_state()
    state.handle(p.Submit(spec()))
    state.handle(run(4))
    actions = state.handle(p.CloseRequest("c1", 9, ROUTER))
    replies = [m for m in sent(actions, ROUTER) if isinstance(m, p.Reply)]
    assert [(r.rid, r.error) for r in replies] == [(4, "the computation is closing"), (9, "")]
    assert state.waiting == []


def test_runs_of_a_queued_or_closed_computation_are_refused_with_the_reason() -> None:
    state, _ = new_state()
    state.handle(p.Submit(spec()))
    state.handle(p.Submit(spec("c2")))
    [queued] = sent(state.handle(run(1, uid="c2")), ROUTER)
    assert queued.value is None and "not scheduled yet" in queued.error
    [gone] = sent(state.handle(run(2, ("each_node",), uid="zz")), ROUTER)
    assert gone.value == [] and gone.error == "the computation is closed"
