"""How a client's `Computation` hears from the scheduler and the servers (a mixin).

One router per computation (a `MessageHandler`: no loop turn of its own) receives every
reply, run result, job failure, output and pulse, and the ends of ``run_result*`` jobs
(`JobValue`/`JobLost`, into ``_values``).
Each request the computation makes is a future keyed by its request id (`_expect`); the
router resolves it with the answer (a `Reply`, a `RunResult`, or for a fan-out the list of
that many `RunResult` s; `_complete`: its caller goes on in the loop turn of the read that
brought it), and `_wait` gives up after a timeout.

Invariants: a request's future is resolved at most once and is forgotten when its wait ends;
when the computation ends (`_end`: closed, scheduler offline or silent for 5 pulse
intervals, not counting time this process's own loop was blocked: `core.stalls`) every
pending future resolves to None, so no caller waits beyond its timeout.
A lost scheduler (offline or silent) is not a normal close: its reason is kept
(``_lost_reason``, and ``last_error``) and every later call fails with it at once.
Exactly once: the router keeps the computation's `JobLedger`; a `WrittenOff` from the
scheduler fences that process incarnation in this process's network and reports each of
its jobs whose end has not reached the status coroutine as lost (`ProcessLost`), once; the
network's exit hook counts the ends that did reach it (a server's own report, or one the
scheduler in this process passed on from a `JobDone`).
The servers report the ends on their own links, not the scheduler's, so the scheduler's
answer to a close may come first: `_await_job_ends` lets ``close()`` wait (bounded) until
the ledger has no open job, i.e. every job's end is in the status coroutine's mailbox.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from discoro.cluster import protocol as p
from discoro.cluster.constants import MISSED_PULSES
from discoro.cluster.job_ledger import JobLedger
from discoro.cluster.output import show_remote_output
from discoro.cluster.scheduler_procs import ProcessLost
from discoro.cluster.status import CoroInfo, Status, StatusMessage
from discoro.core.coro import Coro, wait_own
from discoro.core.handler import MessageHandler
from discoro.core.kernel import AsynCoro
from discoro.core.log import logger
from discoro.core.stalls import ran_late
from discoro.errors import MonitorException
from discoro.net.location import Location, PeerStatus
from discoro.net.runtime import network_of, on_network

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from discoro.cluster.setup_options import SetupOptions


class Replies:
    """The reply side of `Computation` (its attributes are set there)."""

    scheduler: Coro | None
    timeout: float
    pulse_interval: float
    output_handler: Callable[[object, str, str], object] | None
    _waiting: dict[int, asyncio.Future[object]]
    _values: dict[int, asyncio.Future[object]]  # run_result*: request id -> the job's end
    _fanouts: dict[int, list[p.RunResult]]
    _run_args: dict[int, tuple[tuple[object, ...], dict[str, object]]]  # of pending runs
    status_coro: Coro | None
    _scheduled: asyncio.Future[str] | None
    _state: str
    _last_pulse: float
    _last_error: str | None
    _lost_reason: str | None  # why the scheduler is gone (None: it is not)
    _ledger: JobLedger[Coro] | None  # only with a local status coroutine (it sees the ends)
    _setup_options: SetupOptions
    _close_reports: int  # `CloseWaiting` reports received
    _ends_waiter: asyncio.Future[object] | None  # resolved when the ledger has no open job

    def _end(self) -> None:
        raise NotImplementedError

    def _scheduler_lost(self, reason: str) -> None:
        """The scheduler is gone: the computation ends, and every later call fails at once
        with ``reason`` (kept in ``last_error``)."""
        reason += "; the computation is closed"
        logger.warning("%s", reason)
        self._lost_reason = self._last_error = reason
        self._end()

    def _expect(self, rid: int) -> asyncio.Future[object]:
        future: asyncio.Future[object] = _kernel().loop.create_future()
        self._waiting[rid] = future
        return future

    async def _wait(
        self, future: asyncio.Future[object], rid: int, timeout: float | None = None
    ) -> object:
        """The answer for request ``rid``, or None if none came within ``timeout``
        (default: the computation's; ``math.inf``: no limit) or the computation ended."""
        limit = timeout or self.timeout
        # the future is awaited as the caller's own wait (asyncio.wait would cost three
        # loop turns per answer, a foreign future two); a timer gives up on it
        timer = None
        if not future.done() and limit != math.inf:
            timer = _kernel().loop.call_later(limit, _give_up, future)
        try:
            return await wait_own(future)
        finally:
            if timer is not None:
                timer.cancel()
            self._waiting.pop(rid, None)
            self._fanouts.pop(rid, None)
            self._run_args.pop(rid, None)

    def _start_router(self) -> Coro:
        """The router: a `MessageHandler` (each reply is handled as it arrives, no loop turn
        of its own), and a daemon that checks the scheduler's pulses while it lives."""
        router = MessageHandler(self._route, name="router")
        scheduler = self.scheduler
        if scheduler is not None and scheduler.is_remote:
            AsynCoro.instance().peer_status(router)
        status = self.status_coro
        self._ledger = JobLedger() if status is not None and not status.is_remote else None
        hooks = network_of(AsynCoro.instance()).exit_hooks
        if self._end_seen not in hooks:
            hooks.append(self._end_seen)
        Coro(self._watch_pulses, router)
        return router

    def _stop_router(self) -> None:
        """The computation ended: no more ends are counted."""
        hooks = network_of(AsynCoro.instance()).exit_hooks
        if self._end_seen in hooks:
            hooks.remove(self._end_seen)

    def _route(self, message: object) -> None:
        """Handle one reply, pulse or peer status for this computation."""
        if isinstance(message, p.RunResult):
            self._take_run_result(message)
            self._job_created(message)
        elif isinstance(message, p.WrittenOff):
            self._written_off(message)
        elif isinstance(message, p.Output):
            self._show_output(message)
        elif isinstance(message, p.JobError):
            logger.warning("remote coroutine %s failed:\n%s", message.coro, message.text.rstrip())
        elif isinstance(message, p.Reply):
            future = self._waiting.get(message.rid)
            if future is not None and not future.done():
                _complete(future, message)
        elif isinstance(message, p.AllocateQuery):
            self._allocate(message)
        elif isinstance(message, (p.JobValue, p.JobLost)):
            waiter = self._values.get(message.rid)
            if waiter is not None and not waiter.done():
                _complete(waiter, message)
        elif isinstance(message, p.RunWaits):
            logger.warning("run of %s still waits: %s", message.func_name, message.reason)
        elif isinstance(message, p.CloseWaiting):
            self._close_reports += 1  # the first (at once) is news; later ones a concern
            log = logger.info if self._close_reports == 1 else logger.warning
            log("close waits for %d job(s) to end: %s", len(message.coros), message.coros)
        elif isinstance(message, p.Pulse):
            self._last_pulse = time.monotonic()
        elif isinstance(message, p.Scheduled):
            if self._scheduled is not None and not self._scheduled.done():
                self._scheduled.set_result(message.error)
        elif isinstance(message, PeerStatus):
            scheduler = self.scheduler
            if (
                scheduler is not None
                and message.status == PeerStatus.Offline
                and message.location == scheduler.location
            ):
                self._scheduler_lost(f"the scheduler at {message.location} went offline")

    def _check_pulses(self) -> bool:
        """End the computation if its scheduler has been silent too long; whether it did."""
        if self._state != "current":
            return False
        silence = time.monotonic() - self._last_pulse
        if silence <= MISSED_PULSES * self.pulse_interval:
            return False
        where = self.scheduler.location if self.scheduler is not None else None
        self._scheduler_lost(f"no pulse from the scheduler at {where} for {silence:.0f} s")
        return True

    async def _watch_pulses(self, router: Coro, coro: Coro | None = None) -> None:
        """Check the pulses every 2 pulse intervals while ``router`` lives; a check that
        runs late (this process's loop was blocked) counts as a pulse."""
        assert coro is not None
        coro.set_daemon()
        kernel = AsynCoro.instance()
        check = 2 * self.pulse_interval
        previous = time.monotonic()
        while not kernel.has_ended(router):
            await coro.sleep(check)
            now = time.monotonic()
            if ran_late(previous, now, check):  # our loop was blocked, not the scheduler
                self._last_pulse = max(self._last_pulse, now)
            previous = now
            if kernel.has_ended(router) or self._check_pulses():
                return

    def _created(self, coro: Coro, rid: int) -> None:
        """Tell the status coroutine `CoroCreated` as the run's result arrives: before
        anything later from that process (the coroutine's end, which may be in the same
        read) reaches it."""
        status = self.status_coro
        if status is not None:
            args, kwargs = self._run_args.get(rid, ((), {}))
            info = CoroInfo(coro, tuple(args), dict(kwargs), time.time())
            status.send(StatusMessage(Status.CoroCreated, info))

    def _end_seen(self, location: Location, coro_id: int, monitor: Coro) -> None:
        """The network's exit hook: a job's end reached ``monitor`` (counted if that is
        the status coroutine)."""
        if self._ledger is not None and monitor == self.status_coro:
            self._ledger.ended(location, coro_id)
            self._ends_check()

    async def _await_job_ends(self, timeout: float) -> None:
        """Wait up to ``timeout`` until every job's end has reached the (local) status
        coroutine; log the jobs whose end did not come."""
        ledger = self._ledger
        if ledger is None or not ledger.open:
            return
        waiter: asyncio.Future[object] = AsynCoro.instance().loop.create_future()
        self._ends_waiter = waiter
        timer = AsynCoro.instance().loop.call_later(timeout, _give_up, waiter)
        try:
            await wait_own(waiter)
        finally:
            timer.cancel()
            self._ends_waiter = None
        if ledger.open:
            jobs = [str(coro) for coro, _ in ledger.open.values()]
            logger.warning("close: no end heard within %g s from job(s) %s", timeout, jobs)

    def _ends_check(self) -> None:
        """Resolve a waiting `_await_job_ends` once no job is open."""
        waiter, ledger = self._ends_waiter, self._ledger
        if waiter is not None and not waiter.done() and ledger is not None and not ledger.open:
            waiter.set_result(None)

    def _job_created(self, result: p.RunResult) -> None:
        ledger, location = self._ledger, getattr(result, "location", None)
        if ledger is None or result.coro is None or location is None:
            return
        if ledger.started(result.coro, location, getattr(result, "incarnation", 0)):
            why = ledger.why.get(location, f"process {location} was lost")
            self._report_lost([result.coro], why)

    def _written_off(self, message: p.WrittenOff) -> None:
        """The scheduler wrote a process incarnation off: fence it, report its jobs."""
        if self._ledger is not None:
            lost = self._ledger.written_off(
                message.location, message.incarnation, message.reason, message.coros
            )
            self._ends_check()
        else:
            lost = list(message.coros)
        error = ProcessLost(message.reason)
        ids = [coro._id for coro in lost]
        if isinstance(message.location, Location):
            kernel = AsynCoro.instance()
            network = network_of(kernel)  # on its loop (its own thread's, perhaps)
            on_network(kernel, network.write_off, message.location, message.incarnation, ids, error)
        else:
            logger.warning("WrittenOff without a process location: %r", message)
        self._report_lost(lost, message.reason, frozenset(getattr(message, "terminated", ())))

    def _report_lost(
        self, coros: list[Coro], reason: str, terminated: frozenset[int] = frozenset()
    ) -> None:
        """Each of ``coros`` ended with its process: lost, or (``terminated``: ended by a
        terminate before the process ended itself) as any terminate ends."""
        status = self.status_coro
        if status is None:
            return
        for job in coros:
            if job._id in terminated:
                status.send(MonitorException(job, (StopIteration, None)))
            else:
                status.send(MonitorException(job, (ProcessLost, ProcessLost(reason))))

    def _allocate(self, query: p.AllocateQuery) -> None:
        """Answer the scheduler with this client's allocation rules (never run there)."""
        try:
            answer = self._setup_options.answer(query)
        except Exception:
            logger.exception("node allocation failed for %s; not using it", query.info)
            answer = p.Allocation(query.uid, str(getattr(query.info, "addr", query.info)), 0)
        if isinstance(query.reply_to, Coro):
            query.reply_to.send(answer)

    def _show_output(self, output: p.Output) -> None:
        """Show remote output with its origin (`show_remote_output`); then the user's hook."""
        show_remote_output(output.location, output.stream, output.text, output.level)
        handler = self.output_handler
        if handler is not None:
            try:
                handler(output.location, output.stream, output.text)
            except Exception:
                logger.exception("output_handler failed")

    def _take_run_result(self, result: p.RunResult) -> None:
        future = self._waiting.get(result.rid)
        if future is None or future.done():
            return
        if isinstance(result.coro, Coro) and result.rid in self._run_args:
            self._created(result.coro, result.rid)
        if not result.fanout:
            _complete(future, result)
            return
        collected = self._fanouts.setdefault(result.rid, [])
        collected.append(result)
        if len(collected) >= result.fanout:
            _complete(future, list(collected))


def _complete(future: asyncio.Future[object], value: object) -> None:
    """Resolve a request's future; when the answer came in a network read, its caller goes on
    in that same loop turn (`core.wakeups`)."""
    _kernel().complete(future, value)


def _kernel() -> AsynCoro:
    """The process's kernel (once per run and reply: the class attribute first)."""
    return AsynCoro._singleton_instance or AsynCoro.instance()


def _give_up(future: asyncio.Future[object]) -> None:
    if not future.done():
        future.set_result(None)
