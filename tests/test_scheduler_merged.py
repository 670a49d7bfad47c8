"""Messages that carry what two would (issue 9): the scheduler passes on a run result that
rode in `JobStarted` and a job's end that rode in `JobDone`, once, and never the end of a job
it already reported lost (written off with its process incarnation). The state machine alone,
without a network; and the shell's counting of a passed-on end in the network's exit hooks
(the client's exactly-once ledger), in this process's kernel."""

from __future__ import annotations

import pickle
import queue
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from discoro.cluster import protocol as p
from discoro.cluster.job_ledger import JobLedger
from discoro.cluster.run_batch import RunBatcher
from discoro.cluster.scheduler import Scheduler
from discoro.cluster.scheduler_state import EndPassed, PeerLost, SchedulerState, Send
from discoro.core.coro import Coro
from discoro.errors import MonitorException
from discoro.net.handlers import encode_exit
from discoro.net.location import Location
from discoro.net.runtime import network_of
from test_scheduler_state import ROUTER, STATUS, Handle, loc, ready_state, sent

if TYPE_CHECKING:
    from discoro.core.kernel import AsynCoro


class Job(Handle):
    """Stands for a job's coroutine handle (what `encode_exit` reads: ``name`` and ``id``)."""

    def __init__(self, name: str, location: Location) -> None:
        super().__init__(name, location)
        self.id = self._id


def start(
    state: SchedulerState, where: Location, rid: int, merged: bool = True, kind: str = "cpu"
) -> Job:
    job = Job(f"job{rid}", where)
    reply_to = ROUTER if merged else None
    number = state.procs[where].incarnation
    started = p.JobStarted(where, "c1", rid, job, "f", 0.0, "", kind, number, reply_to)
    actions = state.handle(started)
    if merged:  # with where the job runs, for the client's ledger
        assert sent(actions, ROUTER) == [p.RunResult(rid, job, None, 0, where, number)]
    else:
        assert sent(actions, ROUTER) == []
    return job


def done(job: Job, where: Location, value: object, incarnation: int) -> p.JobDone:
    fields, payload = encode_exit(job, (StopIteration, value))  # type: ignore[arg-type]
    return p.JobDone(where, "c1", job._id, incarnation, (job, fields, payload))


def notices(actions: list[Send]) -> list[tuple[object, object]]:
    """The ends passed on to the status coroutine (each names its job's process and id)."""
    passed = [m for m in sent(actions, STATUS) if isinstance(m, EndPassed)]
    assert not [m for m in sent(actions, STATUS) if isinstance(m, MonitorException)]
    for end in passed:
        assert end.notice.args[0]._id == end.coro_id  # type: ignore[attr-defined]
    return [(end.notice.args[0], end.notice.args[1]) for end in passed]


def test_the_run_result_is_passed_on_after_the_job_is_recorded() -> None:
    a = loc(1, 1)
    state, _ = ready_state(a)
    job = start(state, a, 1)
    assert job._id in state.procs[a].jobs  # recorded before the client hears of it
    start(state, a, 2, merged=False)  # a router elsewhere got its own RunResult
    assert len(state.procs[a].jobs) == 2


def test_a_jobs_end_reaches_the_status_coroutine_once() -> None:
    a = loc(1, 1)
    state, _ = ready_state(a)
    job = start(state, a, 1)
    number = state.procs[a].incarnation
    ended = done(job, a, 42, number)
    assert notices(state.handle(ended)) == [(job, (StopIteration, 42))]
    assert state.procs[a].done == 1 and not state.procs[a].jobs
    assert notices(state.handle(ended)) == []  # a repeat is not told twice
    plain = state.handle(p.JobDone(a, "c1", 99, number))  # no end riding along: nothing
    assert notices(plain) == []


def test_a_jobs_done_is_one_event_with_the_actions_of_its_reports_in_order() -> None:
    a = loc(1, 1)
    state, _ = ready_state(a)
    twin, _ = ready_state(a)
    number = state.procs[a].incarnation
    jobs = [start(state, a, rid) for rid in (1, 2, 3)]
    twins = [start(twin, a, rid) for rid in (1, 2, 3)]
    values = [(job, i * 10) for i, job in enumerate(jobs)]
    batch = p.JobsDone([done(job, a, value, number) for job, value in values])
    reports = [done(job, a, i * 10, number) for i, job in enumerate(twins)]
    one_by_one = [action for report in reports for action in twin.handle(report)]
    together = state.handle(batch)
    assert len(together) == len(one_by_one) == 3
    assert [type(action.message) for action in together] == [
        type(action.message) for action in one_by_one
    ]
    assert notices(together) == [(job, (StopIteration, value)) for job, value in values]
    assert state.procs[a].done == 3 and not state.procs[a].jobs


def test_an_end_that_does_not_unpickle_becomes_a_remote_error() -> None:
    a = loc(1, 1)
    state, _ = ready_state(a)
    job = start(state, a, 1)
    fields = {"on": job.name, "oi": job._id, "tn": "Oops", "tm": "bad", "tb": "Traceback..."}
    broken = pickle.dumps(("not", "an", "exit"))[:-3]  # truncated: unpickling fails
    number = state.procs[a].incarnation
    ended = p.JobDone(a, "c1", job._id, number, (job, fields, broken))
    [(observed, info)] = notices(state.handle(ended))
    assert observed is job and info[0].__name__ == "RemoteError"  # type: ignore[index]


def test_the_end_of_a_job_reported_lost_is_dropped() -> None:
    a = loc(1, 1)
    state, _ = ready_state(a)
    job = start(state, a, 1)
    number = state.procs[a].incarnation
    actions = state.handle(PeerLost(a))
    [written_off] = [m for m in sent(actions, ROUTER) if isinstance(m, p.WrittenOff)]
    assert written_off.coros == [job] and written_off.incarnation == number  # lost, once
    assert notices(actions) == []
    assert notices(state.handle(done(job, a, 1, number))) == []  # its late end: not reported


def test_a_job_running_at_close_still_reports_its_end_to_the_status_coroutine() -> None:
    a = loc(1, 1)
    state, _ = ready_state(a)
    job = start(state, a, 1, kind="async")  # a close does not wait for it
    number = state.procs[a].incarnation
    state.handle(p.CloseRequest("c1", 5, ROUTER))
    assert state.current is None
    assert notices(state.handle(done(job, a, 7, number))) == [(job, (StopIteration, 7))]
    assert notices(state.handle(done(job, a, 7, number))) == []  # once


def test_a_passed_on_end_counts_once_in_the_clients_ledger(net_kernel: AsynCoro) -> None:
    """The shell sends a passed-on end to the status coroutine and counts it in the
    network's exit hooks, as a server's own report would count: the client's ledger then
    reports nothing lost when the job's incarnation is written off afterwards, and an end
    that could not be delivered is not counted."""
    where = Location("127.0.0.1", 9)
    ledger: JobLedger[Coro] = JobLedger()
    got: queue.Queue[object] = queue.Queue()

    def status_body(coro: Any = None) -> Any:
        got.put((yield coro.receive(timeout=20)))

    status = Coro(status_body)
    job = net_kernel.coro_handle("job", 7, where)
    shell = SimpleNamespace(kernel=net_kernel, _runs=RunBatcher(net_kernel.loop), _exit_hooks=None)
    hooks = network_of(net_kernel).exit_hooks

    def hook(location: Location, coro_id: int, monitor: Coro) -> None:
        if monitor == status:
            ledger.ended(location, coro_id)

    hooks.append(hook)
    try:
        assert not ledger.started(job, where, 1)
        notice = MonitorException(job, (StopIteration, 5))
        Scheduler._act(shell, status, EndPassed(where, 7, notice))  # type: ignore[arg-type]
        assert got.get(timeout=20) is notice
        assert ledger.written_off(where, 1, "gone", [job]) == []  # already ended: not lost
        status.value(timeout=20)
        other = net_kernel.coro_handle("job", 8, where)
        assert not ledger.started(other, where, 2)
        late = MonitorException(other, (StopIteration, 6))
        Scheduler._act(shell, status, EndPassed(where, 8, late))  # type: ignore[arg-type]
        assert ledger.written_off(where, 2, "gone", [other]) == [other]  # never delivered
    finally:
        hooks.remove(hook)
