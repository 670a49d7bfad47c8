"""`ServerJobs`: how a server process runs jobs (mixed into `discoro.cluster.server.Server`).

- `Run`: the function (a shipped name, or cloudpickle bytes rebound into the namespace) runs
  as a job coroutine (`ServerJob`), monitored by the computation's ``status_coro``. The
  server coroutine is no monitor: a `ServerJob` reports its end itself (``on_done``, however
  it ends), so a `MonitorException` to the server would be one more message and wake-up per
  run that finds nothing left to do (issue 9). When the last job ends and that matters (a
  quit, a drain, a zombie period), the server coroutine gets `JobsIdle` so it looks again.
  ``RunResult`` goes to ``Run.reply_to`` (the coroutine, or the
  ``(exception class, function name, traceback text)`` of a failure) and
  ``JobStarted``/``JobFailed`` to the scheduler. The scheduler hears of a job before the
  client does, and a new job's first step waits until both went to the socket, so a job that
  never yields still gets its ``run`` a reply.
- When a job ends, ``JobDone`` goes to the scheduler from the job's end, after the job's
  output was flushed; with a transport thread the ends of one loop turn go together as one
  held ``JobsDone`` (released at the turn's end, before anything else this server sends the
  scheduler, or by the transport thread after `discoro.net.held.HOLD_MAX` s). A
  ``run_result*`` job also sends its end to the client's router as `JobValue` (the pickled
  final value, or the exception and its traceback), whatever ends it.
- One message where two would go to one process (issue 9): when ``Run.reply_to`` lives where
  the scheduler does, the ``RunResult`` rides in ``JobStarted``; when the status coroutine
  lives there, a job's end rides in ``JobDone`` (`JobExit`) instead of a `MonitorException`.
  In that first case, with a transport thread, ``JobStarted`` is held (`discoro.net.held`):
  a job that ends in its first step sends it inside its ``JobDone`` (one message per run);
  else it goes once that first step is over, or after `discoro.net.held.HOLD_MAX` s when the
  step blocks the loop (the transport thread sends it), so such a job still gets its reply.
- A job that ends with an exception only this server hears of is shown at the client
  (`JobError` to the router). Ended jobs stay findable for late remote monitors (the
  network's ``ended_coros``, the latest `KEEP_ENDED`).

Everything runs on the kernel's loop thread.
"""

from __future__ import annotations

import pickle
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from discoro.cluster import protocol as p
from discoro.cluster import server_lifecycle as lc
from discoro.cluster import server_liveness, sources
from discoro.cluster.server_job import ServerJob
from discoro.core.coro import Coro
from discoro.errors import MonitorException, RemoteError
from discoro.net.handlers import encode_exit
from discoro.net.held import LoopHeld
from discoro.net.runtime import held_sends

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Callable

    from discoro.cluster.namespace import Namespace
    from discoro.cluster.output import OutputCapture
    from discoro.cluster.server_state import Installed, ServerState
    from discoro.core.kernel import AsynCoro
    from discoro.net.held import HeldSend
    from discoro.net.threaded import ThreadedNetwork

KEEP_ENDED = 1000  # ended jobs kept findable for late monitor requests
PROTOCOL = pickle.HIGHEST_PROTOCOL


@dataclass
class JobExit:
    """Internal: a job's end for a status coroutine that lives where the scheduler does: it
    rides in `JobDone` (``exit``, as `discoro.net.handlers.encode_exit` made it)."""

    job: Coro
    fields: dict[str, object]
    payload: bytes


class JobsIdle:
    """Internal, to the server coroutine: the last running job ended."""


def job_value(rid: int, info: tuple[object, ...]) -> p.JobValue:
    """`JobValue` for a job that ended with ``info`` (a local monitor's ``(StopIteration,
    value)`` or ``(type, exception, traceback)``); what does not pickle is replaced by a
    `RemoteError` that names it."""
    kind, value = info[0], info[1]
    if kind is StopIteration:
        try:
            return p.JobValue(rid, pickle.dumps(value, PROTOCOL))
        except Exception as exc:
            text = f"the value ({type(value).__qualname__}) does not pickle: {exc}"
            return p.JobValue(rid, pickle.dumps(RemoteError("PicklingError", text), PROTOCOL), True)
    text = sources.format_failure(info)
    try:
        data = pickle.dumps(value, PROTOCOL)
    except Exception:
        name = getattr(kind, "__name__", str(kind))
        data = pickle.dumps(RemoteError(name, str(value), text), PROTOCOL)
    return p.JobValue(rid, data, True, text)


class ServerJobs:
    """The job half of `discoro.cluster.server.Server` (see the module docstring)."""

    kernel: AsynCoro
    clock: Callable[[], float]
    state: ServerState
    namespace: Namespace | None
    coro: Coro | None
    location: object
    output: OutputCapture | None
    ended: deque[int]
    sources: dict[str, list[str]]
    results: dict[int, tuple[int, Coro]]
    held_starts: dict[int, HeldSend]  # job id -> its `JobStarted`, held (`discoro.net.held`)
    done_batch: HeldSend | None  # this loop turn's `JobDone`s (`JobsDone`), held
    holds: ThreadedNetwork | LoopHeld | None  # where they are held (`_holds`)
    merged_for: tuple[object, object, bool] | None  # the last `_merged` answer

    if TYPE_CHECKING:

        def _perform(self, actions: list[lc.Action], message: object = None) -> None: ...

    def _refuse_run(self, run: p.Run, refusal: str) -> None:
        error: tuple[Any, ...] = (RuntimeError, run.func_name, f"{self.location}: {refusal}")
        run.reply_to.send(p.RunResult(run.rid, None, error, run.fanout))
        current = self.state.current
        if current is not None:
            failed = p.JobFailed(self.location, run.uid, run.rid, current.incarnation)
            self._to_scheduler(current.scheduler, failed)

    def _start_job(self, run: p.Run) -> None:
        current = self.state.current
        assert current is not None and self.namespace is not None
        extra = getattr(run, "sources", None)
        if extra:
            self.sources.update(sources.register(extra))
        try:
            if isinstance(run.func, str):
                func = self.namespace.lookup(run.func)
            else:
                func = self.namespace.load_function(run.func, run.func_name)
            args, kwargs = self.namespace.loads(run.args)
            job = ServerJob(
                self._flush_output, self._job_failed, self._job_done, func, *args, **kwargs
            )
            shown = p.args_repr(args, kwargs)
        except Exception as exc:
            error = (type(exc), run.func_name, traceback.format_exc())
            run.reply_to.send(p.RunResult(run.rid, None, error, run.fanout))
            failed = p.JobFailed(self.location, run.uid, run.rid, current.incarnation)
            self._to_scheduler(current.scheduler, failed)
            return
        self.state.handle(lc.JobStarted(job, self.clock()))
        self.kernel.network().ended_coros[job.id] = job  # found once it ended, too
        if current.status_coro is not None and not current.merge_exits:
            job.notify(current.status_coro)
        # the scheduler hears of the job before the client does: if this process dies right
        # after the client got its coroutine, the scheduler still reports the coroutine lost
        kind = getattr(run, "kind", "cpu")
        incarnation = current.incarnation
        if kind == "result":
            self.results[job.id] = (run.rid, run.reply_to)
        started = p.JobStarted(
            self.location,
            run.uid,
            run.rid,
            job,
            run.func_name,
            time.time(),
            shown,
            kind,
            incarnation,
        )
        merged = self._merged(run.reply_to, current.scheduler)
        if merged:
            started.reply_to, started.fanout = run.reply_to, run.fanout  # passed on from there
            holds = self._holds()
            if not isinstance(holds, LoopHeld):  # held: it rides in the `JobDone` of a job
                # that ends in its first step; else it goes once that step is over (or
                # `HOLD_MAX`). Without the transport thread it goes now: nothing could send
                # it while a first step blocks the loop (`hold_until_written`)
                self.held_starts[job.id] = holds.send_held(current.scheduler, started)
                self.kernel.loop.call_soon(self._release_start, job.id)  # after that step
                return
        self._to_scheduler(current.scheduler, started)
        if not merged:
            result = p.RunResult(run.rid, job, None, run.fanout, self.location, incarnation)
            run.reply_to.send(result)
        server_liveness.hold_until_written(self.kernel, job, (current.scheduler, run.reply_to))

    def _merged(self, reply_to: object, scheduler: Coro) -> bool:
        """`same_process` for a run's reply coroutine and the scheduler, found once per
        pair (every run of a computation names the same two)."""
        last = self.merged_for
        if last is not None and last[0] is reply_to and last[1] is scheduler:
            return last[2]
        merged = same_process(reply_to, scheduler)
        self.merged_for = (reply_to, scheduler, merged)
        return merged

    def _holds(self) -> ThreadedNetwork | LoopHeld:
        """Where this server holds sends (`discoro.net.held`), found once."""
        holds = self.holds
        if holds is None:
            holds = self.holds = held_sends(self.kernel)
        return holds

    def _to_scheduler(self, scheduler: Coro, message: object) -> None:
        """Send ``message`` to ``scheduler`` after the `JobDone`s held so far."""
        if self.done_batch is not None:
            self.flush_dones()
        scheduler.send(message)

    def _send_done(self, scheduler: Coro, done: p.JobDone) -> None:
        """``done`` to ``scheduler``, in one `JobsDone` with the others of this loop turn
        (held: released at the turn's end, before anything else this server sends the
        scheduler, or, with a transport thread, by that thread after `HOLD_MAX`)."""
        holds = self._holds()
        batch = self.done_batch
        if batch is not None:
            dones = cast("p.JobsDone", batch.message).dones
            if batch.coro is scheduler and holds.join_held(batch, dones, done):  # type: ignore[arg-type]
                return
            self.flush_dones()
        batch = self.done_batch = holds.send_held(scheduler, p.JobsDone([done]))
        self.kernel.loop.call_soon(self.flush_dones, batch)

    def flush_dones(self, batch: HeldSend | None = None) -> None:
        """Let the held `JobDone`s go (``batch``: only if they are still that batch)."""
        held = self.done_batch
        if held is None or (batch is not None and batch is not held):
            return
        self.done_batch = None
        self._holds().release_held(held)

    def _release_start(self, job_id: int) -> None:
        """A held start report goes out: the job's first step is over and it runs on."""
        held = self.held_starts.pop(job_id, None)
        if held is not None:
            self._holds().release_held(held)

    def _take_start(self, job_id: int) -> p.JobStarted | None:
        """The job's start report when it is still held (it then rides in the `JobDone`)."""
        held = self.held_starts.pop(job_id, None)
        if held is None or not self._holds().take_held(held):
            return None
        return cast("p.JobStarted", held.message)

    def _send_value(self, ended: MonitorException) -> None:
        """A ``run_result*`` job ended: its value (or exception) to the client's router."""
        job = ended.args[0]
        wanted = self.results.pop(getattr(job, "id", -1), None)
        if wanted is None:
            return
        rid, router = wanted
        router.send(job_value(rid, ended.args[1]))

    def _is_internal(self, coro: Any) -> bool:
        """Whether ``coro`` is this server's own (its output is not the computation's)."""
        current = self.state.current
        return coro is self.coro or (current is not None and coro is current.pulser)

    def _flush_output(self) -> None:
        """A job ends: send its output before its monitors hear of the end."""
        if self.output is not None:
            self.output.flush(final=True)

    def _job_failed(self, job: Coro, exc_info: tuple[object, ...], monitors: list[Coro]) -> None:
        """Show the client a job's exception that no one else is told of."""
        current = self.state.current
        if current is None or current.router is None or job.id not in current.jobs:
            return
        if current.merge_exits or any(monitor is not self.coro for monitor in monitors):
            return  # its status coroutine or a monitor() of the program handles it
        if job.id in self.results:
            return  # a run_result*: its caller gets the exception (`JobValue`)
        text = sources.format_failure(exc_info)
        current.router.send(p.JobError(self.location, current.uid, job, text))

    def _job_done(self, job: Coro, value: object, exc_info: tuple[object, ...] | None) -> None:
        """A job ended (its monitors were told): its value to a ``run_result*`` caller, and
        the report to the scheduler, at once, with its end for the status coroutine when
        that goes through the scheduler."""
        current = self.state.current
        if current is None or job.id not in current.jobs:
            return
        info = exc_info if exc_info is not None else (StopIteration, value)
        if self.results:  # a ``run_result*`` job may be among them
            self._send_value(MonitorException(job, info))
        ended: JobExit | None = None
        if current.merge_exits and current.status_coro is not None:
            fields, payload = encode_exit(job, info)
            ended = JobExit(job, fields, payload)
        self._perform(self.state.handle(lc.JobEnded(job.id, self.clock())), ended)
        if not current.jobs and self.coro is not None and self._idle_matters(current):
            self.coro.send(JobsIdle())

    def _idle_matters(self, current: Installed) -> bool:
        """Whether the server coroutine must look again once no job runs: it quits or
        drains, or the zombie period starts (else its wait has no deadline to change)."""
        state = self.state
        return state.quitting or state.draining or current.zombie_period is not None

    def _report_job_done(
        self, current: Installed, coro_id: int, ended: JobExit | None = None
    ) -> None:
        exit = (ended.job, ended.fields, ended.payload) if ended is not None else None
        started = self._take_start(coro_id) if self.held_starts else None
        done = p.JobDone(self.location, current.uid, coro_id, current.incarnation, exit, started)
        self._send_done(current.scheduler, done)
        self.ended.append(coro_id)
        if len(self.ended) > KEEP_ENDED:
            self.kernel.network().ended_coros.pop(self.ended.popleft(), None)


def same_process(coro: object, other: object) -> bool:
    """Whether the coroutines ``coro`` and ``other`` (handles, maybe None) live in one
    process: then one message to ``other`` can carry what is meant for both (issue 9)."""
    if not isinstance(coro, Coro) or not isinstance(other, Coro):
        return False
    return bool(coro.home_location == other.home_location)  # no copies: once per run
