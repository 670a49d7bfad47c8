"""The per-turn batches of runs pickle as rows (`discoro.cluster.batch_rows`, issue 9): a
`JobsDone` as a server makes it and a `Runs` as a scheduler makes it unpickle to what they
were (jobs, starts, ends and runs equal and in order, one object for each job's coroutine and
for the shared reply coroutine), a local coroutine comes back as itself, and a batch whose
items do not share what rows hoist pickles item by item and still comes back equal."""

from __future__ import annotations

import pickle
import time
from typing import TYPE_CHECKING

import pytest

from discoro.cluster import batch_rows
from discoro.cluster import protocol as p
from discoro.core.coro import Coro
from discoro.net.handlers import encode_exit
from discoro.net.location import Location

if TYPE_CHECKING:
    from discoro.core.kernel import AsynCoro

UID = "c1-0123456789abcdef"


def server_batch(kernel: AsynCoro, where: Location, count: int = 4) -> p.JobsDone:
    """A `JobsDone` as a server process at ``where`` makes it: each job ended in its first
    step (its start rides along) and its end goes to a status coroutine with the scheduler."""
    router = kernel.coro_handle("router", 7, Location("127.0.0.1", 40001))
    dones = []
    for i in range(count):
        job = kernel.coro_handle("work", 100 + i, where)
        fields, payload = encode_exit(job, (StopIteration, i * i))
        started = p.JobStarted(where, UID, 50 + i, job, "work", time.time(), f"({i})", "cpu", 3)
        started.reply_to, started.fanout = router, 0
        dones.append(p.JobDone(where, UID, job._id, 3, (job, fields, payload), started))
    return p.JobsDone(dones)


def round_trip(message: object) -> object:
    return pickle.loads(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))


def test_a_servers_jobs_done_travels_as_rows_and_comes_back_equal(net_kernel: AsynCoro) -> None:
    where = Location("127.0.0.1", 40002)
    batch = server_batch(net_kernel, where)
    assert batch.__reduce__()[0] is batch_rows.jobs_done_from_rows
    back = round_trip(batch)
    assert isinstance(back, p.JobsDone) and back == batch
    for done in back.dones:
        assert done.exit is not None and done.started is not None
        assert done.exit[0] is done.started.coro  # one object per job, as before
        assert done.exit[0].location == where
    assert len({id(done.started.reply_to) for done in back.dones}) == 1  # type: ignore[union-attr]
    assert len(pickle.dumps(batch)) < len(pickle.dumps(batch.dones))  # rows are smaller


def test_reports_without_a_start_or_an_end_keep_them_none(net_kernel: AsynCoro) -> None:
    where = Location("127.0.0.1", 40003)
    batch = server_batch(net_kernel, where)
    batch.dones[0].started = None  # its start went out on its own
    batch.dones[1].exit = None  # its end goes to a status coroutine elsewhere
    batch.dones[2].started = batch.dones[2].exit = None
    assert batch.__reduce__()[0] is batch_rows.jobs_done_from_rows
    back = round_trip(batch)
    assert back == batch


def test_a_local_job_comes_back_as_the_coroutine_itself(net_kernel: AsynCoro) -> None:
    def idle(coro=None):  # type: ignore[no-untyped-def]
        yield coro.receive()

    job = Coro(idle)
    try:
        here = net_kernel.location
        fields, payload = encode_exit(job, (StopIteration, None))
        batch = p.JobsDone([p.JobDone(here, UID, job._id, 0, (job, fields, payload))])
        back = round_trip(batch)
        assert isinstance(back, p.JobsDone) and back.dones[0].exit[0] is job  # type: ignore[index]
    finally:
        job.terminate()


@pytest.mark.parametrize("change", ["uid", "location", "incarnation", "reply_to", "job"])
def test_a_batch_that_shares_less_pickles_report_by_report(
    net_kernel: AsynCoro, change: str
) -> None:
    where = Location("127.0.0.1", 40004)
    batch = server_batch(net_kernel, where)
    last = batch.dones[-1]
    assert last.started is not None and last.exit is not None
    if change == "uid":
        last.uid = "another"
    elif change == "location":
        last.location = Location("127.0.0.1", 40004)  # equal, but not the batch's own
    elif change == "incarnation":
        last.incarnation = 4
    elif change == "reply_to":
        last.started.reply_to = net_kernel.coro_handle("router", 8, where)
    else:  # the end names another coroutine than the report
        last.exit = (batch.dones[0].exit[0], *last.exit[1:])  # type: ignore[index]
    assert batch.__reduce__()[0] is p.JobsDone
    assert round_trip(batch) == batch


def scheduler_runs(kernel: AsynCoro, count: int = 4) -> p.Runs:
    router = kernel.coro_handle("router", 7, Location("127.0.0.1", 40005))
    runs = [
        p.Run(UID, 10 + i, "work", "work", pickle.dumps(((i,), {})), router) for i in range(count)
    ]
    return p.Runs(runs)


def test_a_schedulers_runs_travel_as_rows_and_come_back_equal(net_kernel: AsynCoro) -> None:
    batch = scheduler_runs(net_kernel)
    batch.runs[1].sources = {"work.py": "def work(i): ..."}
    batch.runs[2].kind, batch.runs[2].fanout = "result", 3
    assert batch.__reduce__()[0] is batch_rows.runs_from_rows
    back = round_trip(batch)
    assert isinstance(back, p.Runs) and back == batch
    assert len({id(run.reply_to) for run in back.runs}) == 1
    back.runs[0].sources["added"] = "x"  # each run has its own sources, as before
    assert back.runs[3].sources == {}


@pytest.mark.parametrize("change", ["uid", "reply_to"])
def test_runs_that_share_less_pickle_run_by_run(net_kernel: AsynCoro, change: str) -> None:
    batch = scheduler_runs(net_kernel)
    if change == "uid":
        batch.runs[2].uid = "another"
    else:
        batch.runs[2].reply_to = net_kernel.coro_handle("router", 9, Location("127.0.0.1", 1))
    assert batch.__reduce__()[0] is p.Runs
    assert round_trip(batch) == batch


def test_empty_batches_round_trip() -> None:
    assert round_trip(p.JobsDone([])) == p.JobsDone([])
    assert round_trip(p.Runs([])) == p.Runs([])
