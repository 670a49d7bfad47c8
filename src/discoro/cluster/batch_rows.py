"""How the per-turn batches of runs pickle: what every item of a batch shares once, then
each item as a row of plain values (issue 9).

A `Runs` (scheduler -> server) and a `JobsDone` (server -> scheduler) travel once per batch
of runs. Pickled item by item, each `Run`, `JobDone` and `JobStarted` costs a Python-level
``__reduce__`` and each job's `Coro` another, on a thread where every microsecond is on the
runs' critical path: a `JobsDone` of 4 took ~15 us to pickle, as rows ~7 (bench/RESULTS.md).

Invariants:
- Unpickling gives back what pickling the items one by one would: equal items in the same
  order, each job's `Coro` as `discoro.core.references.coro_from_reference` makes it (the
  object itself where it lives, else a handle), the shared reply coroutine one object.
- Rows are used only when the items really share those values (the same location, uid,
  incarnation and reply coroutine; each job's start and end name the job the report is
  about). Any other batch pickles item by item, as before: a mixed batch is rare, never
  wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discoro.cluster import protocol as p
from discoro.core.coro import Coro
from discoro.core.references import coro_from_reference

if TYPE_CHECKING:
    from collections.abc import Sequence

#: A start's row: (rid, func_name, start_time, args_repr, kind, fanout).
StartRow = tuple[int, str, float, str, str, int]
#: A job's row: (coro_id, job name or None, end fields or None, end payload, start or None).
JobRow = tuple[int, "str | None", "dict[str, object] | None", "bytes | None", "StartRow | None"]
#: A run's row: (rid, func, func_name, args, fanout, sources or None, kind).
RunRow = tuple[int, object, str, bytes, int, "dict[str, str] | None", str]


def _where(coro: Coro) -> object:
    """The location ``coro`` pickles with (`discoro.core.references.coro_reference`)."""
    return coro._location if coro._remote else coro._kernel.location


def _job_name(job: object, coro_id: int, location: object) -> str | None:
    """``job``'s name if it is coroutine ``coro_id`` at ``location``, else None."""
    if not isinstance(job, Coro) or job._id != coro_id:
        return None
    where = _where(job)
    if where is not location and where != location:
        return None
    return job._name


def reduce_jobs_done(batch: p.JobsDone) -> tuple[object, ...]:
    """``JobsDone.__reduce__``: as rows when its reports share location, uid, incarnation
    and reply coroutine (a server's batch always does); else report by report."""
    dones = batch.dones
    if not dones:
        return (p.JobsDone, (dones,))
    first = dones[0]
    location, uid, incarnation = first.location, first.uid, first.incarnation
    reply_to: object = None
    replied = False
    rows: list[JobRow] = []
    for done in dones:
        if done.location is not location or done.uid != uid or done.incarnation != incarnation:
            return (p.JobsDone, (dones,))
        coro_id, exit, started = done.coro_id, done.exit, done.started
        name = fields = payload = start = None
        if exit is not None:
            name = _job_name(exit[0], coro_id, location)
            if name is None:
                return (p.JobsDone, (dones,))
            fields, payload = exit[1], exit[2]
        if started is not None:
            if exit is not None and started.coro is not exit[0]:
                return (p.JobsDone, (dones,))
            if name is None:
                name = _job_name(started.coro, coro_id, location)
            if (
                name is None
                or started.location is not location
                or started.uid != uid
                or started.incarnation != incarnation
                or (replied and started.reply_to is not reply_to)
            ):
                return (p.JobsDone, (dones,))
            reply_to, replied = started.reply_to, True
            start = (
                started.rid,
                started.func_name,
                started.start_time,
                started.args_repr,
                started.kind,
                started.fanout,
            )
        rows.append((coro_id, name, fields, payload, start))
    return (jobs_done_from_rows, (location, uid, incarnation, reply_to, rows))


def jobs_done_from_rows(
    location: object, uid: str, incarnation: int, reply_to: object, rows: Sequence[JobRow]
) -> p.JobsDone:
    """Unpickle a `JobsDone` that `reduce_jobs_done` made rows of."""
    job_done, job_started = p.JobDone, p.JobStarted
    dones = []
    for coro_id, name, fields, payload, start in rows:
        job = None if name is None else coro_from_reference(name, coro_id, location)
        started = None
        if start is not None:
            rid, func_name, start_time, args_repr, kind, fanout = start
            started = job_started(
                location,
                uid,
                rid,
                job,
                func_name,
                start_time,
                args_repr,
                kind,
                incarnation,
                reply_to,
                fanout,
            )
        exit = None if fields is None or payload is None else (job, fields, payload)
        dones.append(job_done(location, uid, coro_id, incarnation, exit, started))
    return p.JobsDone(dones)


def reduce_runs(batch: p.Runs) -> tuple[object, ...]:
    """``Runs.__reduce__``: as rows when its runs share uid and reply coroutine (a
    scheduler's batch for one computation does); else run by run."""
    runs = batch.runs
    if not runs:
        return (p.Runs, (runs,))
    first = runs[0]
    uid, reply_to = first.uid, first.reply_to
    rows: list[RunRow] = []
    for run in runs:
        if run.uid != uid or run.reply_to is not reply_to:
            return (p.Runs, (runs,))
        sources = run.sources or None  # most runs ship none: one None, not one {} each
        rows.append((run.rid, run.func, run.func_name, run.args, run.fanout, sources, run.kind))
    return (runs_from_rows, (uid, reply_to, rows))


def runs_from_rows(uid: str, reply_to: object, rows: Sequence[RunRow]) -> p.Runs:
    """Unpickle a `Runs` that `reduce_runs` made rows of."""
    run = p.Run
    return p.Runs(
        [
            run(uid, rid, func, func_name, args, reply_to, fanout, sources or {}, kind)
            for rid, func, func_name, args, fanout, sources, kind in rows
        ]
    )
