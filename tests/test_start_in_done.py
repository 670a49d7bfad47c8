"""A job's start report riding in its end report (issue 9): one message per trivial run.

A server with a transport thread holds a job's `JobStarted` (`discoro.net.held`): a job
that ends in its first step sends it inside its `JobDone`; the scheduler takes the start
first, then the end, exactly as if two messages had come. A held message goes out exactly
once or is taken back exactly once, and goes out by itself after `HOLD_MAX` seconds (a job
that blocks its loop in its first step still gets its ``run`` answered). A server without
a transport thread holds only the ends of a loop turn, sent together. Checked here: the
state machine alone, the held sends on a real event loop, and a real node and client.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from discoro.cluster import protocol as p
from discoro.cluster.scheduler_state import PeerLost
from discoro.net.held import SENT, TAKEN, Held, HeldSend
from test_scheduler_merged import Job, notices
from test_scheduler_merged import done as done_of
from test_scheduler_state import ROUTER, STATUS, loc, ready_state, sent

if TYPE_CHECKING:
    from discoro.net.location import Location

pytestmark = pytest.mark.timeout(60)


def merged_end(where: Location, rid: int, incarnation: int) -> tuple[Job, p.JobDone]:
    job = Job(f"job{rid}", where)
    started = p.JobStarted(where, "c1", rid, job, "f", 0.0, "", "cpu", incarnation, ROUTER)
    ended = done_of(job, where, rid * 10, incarnation)
    ended.started = started
    return job, ended


def test_a_start_that_rides_in_the_end_is_taken_first() -> None:
    a = loc(1, 1)
    state, _ = ready_state(a)
    number = state.procs[a].incarnation
    job, ended = merged_end(a, 1, number)
    actions = state.handle(ended)
    # the client's answer, then the end for the status coroutine: in that order, once each
    assert sent(actions, ROUTER) == [p.RunResult(1, job, None, 0, a, number)]
    assert notices(actions) == [(job, (StopIteration, 10))]
    order = [action.to for action in actions if action.to in (ROUTER, STATUS)]
    assert order.index(ROUTER) < order.index(STATUS)
    proc = state.procs[a]
    assert proc.submitted == 1 and proc.done == 1 and not proc.jobs  # started and ended


def test_a_merged_report_from_a_written_off_incarnation_reports_no_end() -> None:
    a = loc(1, 1)
    state, _ = ready_state(a)
    old = state.procs[a].incarnation
    job = Job("job0", a)
    state.handle(p.JobStarted(a, "c1", 9, job, "f", 0.0, "", "cpu", old, ROUTER))
    state.handle(PeerLost(a))
    _, ended = merged_end(a, 2, old)
    actions = state.handle(ended)
    assert notices(actions) == []  # the client reports those jobs lost, once
    assert state.procs.get(a) is None or state.procs[a].done == 0


# -- held sends ---------------------------------------------------------------------------------


def test_a_held_send_goes_out_once_or_is_taken_once() -> None:
    out: list[object] = []
    held = Held(lambda coro, message: out.append(message))
    first, second = HeldSend(None, "a"), HeldSend(None, "b")  # type: ignore[arg-type]
    assert held.take(first) and first.state == TAKEN
    held.release(first)  # taken: nothing goes out
    assert not held.take(first)
    held.release(second)
    held.release(second)  # sent once
    assert not held.take(second) and second.state == SENT
    assert out == ["b"] and held.sent == 1 and held.taken == 1


def test_an_item_joins_a_held_send_only_while_it_is_held() -> None:
    out: list[object] = []
    held = Held(lambda coro, message: out.append(list(message)))  # type: ignore[call-overload]
    items: list[object] = [1]
    batch = HeldSend(None, items)  # type: ignore[arg-type]
    assert held.join(batch, items, 2)
    held.release(batch)
    assert not held.join(batch, items, 3)  # gone: the caller sends it another way
    assert out == [[1, 2]]


def test_a_held_send_goes_out_by_itself() -> None:
    out: list[tuple[object, float]] = []
    loop = asyncio.new_event_loop()
    try:
        two = asyncio.Event()

        def send(coro: object, message: object) -> None:
            out.append((message, loop.time()))
            if len(out) == 2:
                two.set()

        held = Held(send)
        items = [HeldSend(None, i) for i in range(3)]  # type: ignore[arg-type]
        woken = [held.hold(item) for item in items]
        assert woken == [False, True, True]  # only the first asks the loop to watch
        held.watch(loop)
        assert held.take(items[1])  # the core took this one back
        loop.run_until_complete(asyncio.wait_for(two.wait(), 10))
        assert not held._armed  # nothing left to send
    finally:
        loop.close()
    assert [message for message, _ in out] == [0, 2]


def test_a_send_held_while_the_loop_watches_goes_out_by_itself_with_no_hand_over() -> None:
    """The core that holds a start while the transport loop watches asks nothing of that
    loop (no wake-up); if the core then blocks, the loop's sweep still sends it."""
    out: list[object] = []
    loop = asyncio.new_event_loop()
    try:
        held = Held(lambda coro, message: out.append(message))
        first = HeldSend(None, "first")  # type: ignore[arg-type]
        assert not held.hold(first)
        held.watch(loop)
        assert held.take(first)
        blocked = HeldSend(None, "blocked")  # type: ignore[arg-type]
        assert held.hold(blocked)  # watched already: no `watch` call follows
        while not out:  # bounded by the test's timeout
            loop.run_until_complete(asyncio.sleep(0.001))
    finally:
        loop.close()
    assert out == ["blocked"] and blocked.state == SENT and held.sent == 1


def test_the_watch_stops_when_nothing_is_held_and_a_later_hold_starts_it_again() -> None:
    out: list[object] = []
    loop = asyncio.new_event_loop()
    try:
        held = Held(lambda coro, message: out.append(message))
        first = HeldSend(None, "taken")  # type: ignore[arg-type]
        assert not held.hold(first)
        held.watch(loop)
        assert held.take(first)
        while held._watching:  # one sweep forgets it, the next finds nothing new: stop
            loop.run_until_complete(asyncio.sleep(0.001))
        assert held._timer is None and not held._armed
        later = HeldSend(None, "later")  # type: ignore[arg-type]
        assert not held.hold(later)  # the loop must be asked to watch again
        held.watch(loop)
        while not out:  # bounded by the test's timeout
            loop.run_until_complete(asyncio.sleep(0.001))
    finally:
        loop.close()
    assert out == ["later"] and later.state == SENT


# -- a real node and client ---------------------------------------------------------------------

JOBS = """
def trivial(i, coro=None):
    return i
    yield


def blocker(seconds, client, coro=None):
    import time
    client.send("BLOCKING")
    time.sleep(seconds)  # the first step blocks the server's loop
    return "unblocked"
    yield
"""

PROGRAM = (
    """
from discoro.cluster import scheduler_processes

MERGED = []
_on_done = scheduler_processes.ProcessEvents.on_JobDone


def on_done(self, event):
    if getattr(event, "started", None) is not None:
        MERGED.append(event.coro_id)
    _on_done(self, event)


scheduler_processes.ProcessEvents.on_JobDone = on_done

"""
    + JOBS
    + """


def client(coro=None):
    comp = yield from start([trivial, blocker], coro, nprocs=1)
    jobs = []
    for i in range(20):
        job = yield comp.run(trivial, i)
        jobs.append(job)
    out("TRIVIAL", sum(isinstance(job, Coro) for job in jobs), len(MERGED) > 0)
    job = yield comp.run(blocker, 5.0, coro)
    msg = yield coro.receive(timeout=30)
    out("BLOCKER", type(job).__name__, msg, job._id in MERGED)  # answered while it blocks
    yield comp.close()
    return "ok"
"""
)


@pytest.mark.timeout(120)
def test_trivial_runs_send_one_report_and_a_blocked_job_is_answered(
    cluster_secret: str, udp_port: int
) -> None:
    import discoro
    from cluster_programs import run_client

    with discoro.local_cluster(procs=1, udp_port=udp_port, secret=cluster_secret):
        with run_client(PROGRAM, udp_port, nprocs=1) as client:
            client.expect(r"^TRIVIAL 20 True$", timeout=60)
            client.expect(r"^BLOCKER Coro BLOCKING False$", timeout=30)
            client.expect(r"^DONE ok$", timeout=60)
            assert client.wait(20) == 0
        output = client.output
        ends = [line for line in output if line.startswith("MONITOR ")]
        assert len(ends) == 21, output  # every job's end, once
        assert sum("StopIteration 'unblocked'" in line for line in ends) == 1, output


ONE_LOOP_PROGRAM = (
    """
from discoro.cluster import protocol as p
from discoro.cluster import scheduler

BATCHES = []
_handle = scheduler.Scheduler._handle


def handle(self, message):
    if type(message) is p.JobsDone:  # its ends come back here one by one: not counted
        BATCHES.append(len(message.dones))
        for done in message.dones:
            _handle(self, done)
        return
    if type(message) is p.JobDone:
        BATCHES.append(1)
    _handle(self, message)


scheduler.Scheduler._handle = handle

"""
    + JOBS
    + """


def runner(comp, count, jobs, coro=None):
    for i in range(count):
        jobs.append((yield comp.run(trivial, i)))


def client(coro=None):
    comp = yield from start([trivial, blocker], coro, nprocs=1)
    jobs = []
    runners = [Coro(runner, comp, 10, jobs) for _ in range(4)]  # runs in flight together
    for each in runners:
        yield each.finish()
    out("TRIVIAL", sum(isinstance(job, Coro) for job in jobs))
    job = yield comp.run(blocker, 3.0, coro)
    msg = yield coro.receive(timeout=30)
    out("BLOCKER", type(job).__name__, msg)  # its start went out before its first step
    yield comp.close()  # every end has been reported by now
    out("ENDS", sum(BATCHES), max(BATCHES))
    return "ok"
"""
)


@pytest.mark.timeout(120)
def test_a_server_on_one_loop_reports_the_ends_of_a_loop_turn_together(
    cluster_secret: str, udp_port: int
) -> None:
    """Without a transport thread the `JobDone`s of one loop turn go in one `JobsDone` too
    (`discoro.net.held.LoopHeld`); the start reports are not held there (nothing could send
    them while a first step blocks the loop), so ``run`` still answers a blocking job."""
    import discoro
    from cluster_programs import run_client

    cluster = discoro.local_cluster(
        procs=1, udp_port=udp_port, secret=cluster_secret, args=["--no-net-thread"]
    )
    with cluster:
        with run_client(ONE_LOOP_PROGRAM, udp_port, nprocs=1) as client:
            client.expect(r"^TRIVIAL 40$", timeout=60)
            client.expect(r"^BLOCKER Coro BLOCKING$", timeout=30)
            # every end reported once; some turns ended several jobs, reported together
            most = client.expect(r"^ENDS 41 (\d+)$", timeout=60).group(1)
            assert int(most) > 1, client.output
            client.expect(r"^DONE ok$", timeout=60)
            assert client.wait(20) == 0
        ends = [line for line in client.output if line.startswith("MONITOR ")]
        assert len(ends) == 41, client.output  # every job's end, once
        assert sum("StopIteration 'unblocked'" in line for line in ends) == 1, client.output
