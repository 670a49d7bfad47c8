"""Messages that carry what two would (issue 9): the scheduler passes on a run result that
rode in `JobStarted` and a job's end that rode in `JobDone`, once, and never the end of a job
it already reported lost. The state machine alone, without a network."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

from discoro.cluster import protocol as p
from discoro.cluster.scheduler_state import PeerLost, SchedulerState, Send
from discoro.errors import MonitorException
from discoro.net.handlers import encode_exit
from test_scheduler_state import ROUTER, STATUS, Handle, loc, ready_state, sent

if TYPE_CHECKING:
    from discoro.net.location import Location


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
    actions = state.handle(p.JobStarted(where, "c1", rid, job, "f", 0.0, "", kind, reply_to))
    if merged:
        assert sent(actions, ROUTER) == [p.RunResult(rid, job, None, 0)]
    else:
        assert sent(actions, ROUTER) == []
    return job


def done(job: Job, where: Location, value: object) -> p.JobDone:
    fields, payload = encode_exit(job, (StopIteration, value))  # type: ignore[arg-type]
    return p.JobDone(where, "c1", job._id, (job, fields, payload))


def notices(actions: list[Send]) -> list[tuple[object, object]]:
    return [
        (m.args[0], m.args[1]) for m in sent(actions, STATUS) if isinstance(m, MonitorException)
    ]


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
    ended = done(job, a, 42)
    assert notices(state.handle(ended)) == [(job, (StopIteration, 42))]
    assert state.procs[a].done == 1 and not state.procs[a].jobs
    assert notices(state.handle(ended)) == []  # a repeat is not told twice
    plain = state.handle(p.JobDone(a, "c1", 99))  # no end riding along: nothing to pass on
    assert notices(plain) == []


def test_an_end_that_does_not_unpickle_becomes_a_remote_error() -> None:
    a = loc(1, 1)
    state, _ = ready_state(a)
    job = start(state, a, 1)
    fields = {"on": job.name, "oi": job._id, "tn": "Oops", "tm": "bad", "tb": "Traceback..."}
    broken = pickle.dumps(("not", "an", "exit"))[:-3]  # truncated: unpickling fails
    [(observed, info)] = notices(state.handle(p.JobDone(a, "c1", job._id, (job, fields, broken))))
    assert observed is job and info[0].__name__ == "RemoteError"  # type: ignore[index]


def test_the_end_of_a_job_reported_lost_is_dropped() -> None:
    a = loc(1, 1)
    state, _ = ready_state(a)
    job = start(state, a, 1)
    lost = notices(state.handle(PeerLost(a)))
    assert [observed for observed, _ in lost] == [job]  # reported lost, once
    assert notices(state.handle(done(job, a, 1))) == []  # its late end is not a second report


def test_a_job_running_at_close_still_reports_its_end_to_the_status_coroutine() -> None:
    a = loc(1, 1)
    state, _ = ready_state(a)
    job = start(state, a, 1, kind="async")  # a close does not wait for it
    state.handle(p.CloseRequest("c1", 5, ROUTER))
    assert state.current is None
    assert notices(state.handle(done(job, a, 7))) == [(job, (StopIteration, 7))]
    assert notices(state.handle(done(job, a, 7))) == []  # once
