"""How the scheduler closes the current computation (later-versions D4, D5; no I/O).

A client's ``close(await_async=False)`` is a `CloseRequest`. The close waits until the
computation's CPU jobs (``run``, ``run_at``, ``run_result*``: the ones that hold a slot) have
ended, and with ``await_async`` its other jobs too (``run_async*`` and the fan-outs); jobs are
not killed. While it waits, no run is accepted ("the computation is closing"), held runs are
refused, and every `MsgTimeout` seconds (and once at the start) the client is sent the jobs it
still waits for (`CloseWaiting`), which it logs. Then every process of the computation is sent
`Close` (which terminates the jobs still running, i.e. async ones without ``await_async``),
and the status coroutine gets ``ServerClosed`` per process, ``NodeClosed`` per node and
``ComputationClosed`` (info: the scheduler's `Location`) *before* the close is answered, so a
client's ``close()`` returns after its status coroutine was sent them (the same link, FIFO).

``CloseRequest(force=True)`` (the client at interpreter exit, after 5 pulse intervals) closes
at once. A lost process ends its jobs, so it never holds a close; a lost client closes at once
without statuses (its status coroutine is gone too); an idle close (every process closed after
its zombie period) answers a waiting close as well. A computation is closed once: every
`CloseRequest` for it is answered (0), also ones that arrive while it waits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from discoro.cluster import protocol as p
from discoro.cluster.constants import MsgTimeout
from discoro.cluster.scheduler_procs import ComputationEvent, JobEvent, ProcEvent, advance
from discoro.cluster.status import Status

if TYPE_CHECKING:
    from collections.abc import Callable

    from discoro.cluster.placement import WaitingRun
    from discoro.cluster.scheduler_state import Computation, Proc

CPU_KINDS = ("cpu", "result")  # job kinds that hold a CPU slot; close always waits for them
ACTIVE = ("initializing", "initialized")


@dataclass
class PendingClose:
    """A close that waits for jobs to end."""

    await_async: bool
    next_report: float  # monotonic: when to send the next `CloseWaiting`
    replies: list[tuple[object, int]] = field(default_factory=list)  # (router, rid) to answer


class CloseRules:
    """Closing in `SchedulerState` (a mixin: the attributes are the state's)."""

    me: object
    current: Computation | None
    queue: list[Computation]
    procs: dict[object, Proc]
    waiting: list[WaitingRun]
    closing: PendingClose | None
    now: float  # monotonic time of the event being handled
    node_info_of: Callable[[str], object]  # the state's (no stub: it may come from a mixin)

    def _send(self, to: object, message: object) -> None:
        raise NotImplementedError

    def _status(self, status: int, info: object) -> None:
        raise NotImplementedError

    def _uid_ok(self, uid: str) -> bool:
        raise NotImplementedError

    def _refuse(self, event: p.RunRequest, reason: str) -> None:
        raise NotImplementedError

    def _next(self) -> None:
        raise NotImplementedError

    def _remember_closed(self, location: object, coro_id: int, status: object) -> None:
        raise NotImplementedError

    def on_CloseRequest(self, event: p.CloseRequest) -> None:
        for index, queued in enumerate(self.queue):
            if queued.spec.uid == event.uid:
                del self.queue[index]
                queued.advance(ComputationEvent.WITHDRAWN)
                self._send(queued.spec.router, p.Reply(event.rid, 0))
                return
        if not self._uid_ok(event.uid):
            self._send(event.router, p.Reply(event.rid, -1, "no such computation"))
            return
        if self.closing is None:
            self.closing = PendingClose(bool(event.await_async), self.now)
            held, self.waiting = self.waiting, []
            for run in held:
                self._refuse(run.request, "the computation is closing")
        elif event.await_async:
            self.closing.await_async = True
        self.closing.replies.append((event.router, event.rid))
        if event.force:
            self._close_current(client_gone=False)
        else:
            self._check_close(self.now)

    def _close_blockers(self, await_async: bool) -> list[str]:
        """The jobs (their ``str``; dispatched ones as ``run <rid> at <location>``) a close
        still waits for."""
        blockers: list[str] = []
        for proc in self.procs.values():
            if proc.state.value not in ACTIVE:
                continue
            for job in proc.jobs.values():
                if await_async or job.kind in CPU_KINDS:
                    blockers.append(f"{job.coro} ({job.func_name})")
            for rid, kind in proc.pending.items():
                if await_async or kind in CPU_KINDS:
                    blockers.append(f"run {rid} at {proc.location} (starting)")
        return blockers

    def _check_close(self, now: float) -> None:
        """Finish a waiting close once nothing holds it; report what holds it meanwhile."""
        closing, current = self.closing, self.current
        if closing is None or current is None:
            return
        blockers = self._close_blockers(closing.await_async)
        if not blockers:
            self._close_current(client_gone=False)
        elif now >= closing.next_report:
            closing.next_report = now + MsgTimeout
            self._send(current.spec.router, p.CloseWaiting(current.spec.uid, blockers))

    def _close_current(self, client_gone: bool, idle: bool = False) -> None:
        """Close the current computation now: explicitly (statuses, then the close's
        answers), as idle (its statuses went out as its processes closed) or because its
        client is gone (no statuses)."""
        current = self.current
        if current is None:
            return
        if client_gone:
            current.spec.status_coro = None  # detached: no one listens any more
        explicit = not client_gone and not idle
        closed_nodes: list[str] = []
        for proc in self.procs.values():
            if proc.state.value in ACTIVE:
                self._send(proc.server, p.Close(current.spec.uid))
                if explicit:
                    self._status(Status.ServerClosed, proc.location)
                    if proc.addr not in closed_nodes:
                        closed_nodes.append(proc.addr)
                advance(proc, ProcEvent.CLOSED)
            jobs, _ = proc.take_all(JobEvent.CLOSED)
            status = current.spec.status_coro
            if status is not None:  # a JobDone on its way still reaches it
                for coro_id in jobs:
                    self._remember_closed(proc.location, coro_id, status)
        for addr in closed_nodes:
            self._status(Status.NodeClosed, self.node_info_of(addr))
        if not client_gone:
            self._status(Status.ComputationClosed, getattr(self.me, "location", None))
        held, self.waiting = self.waiting, []
        for run in held:
            self._refuse(run.request, "the computation is closed")
        closing, self.closing = self.closing, None
        for router, rid in closing.replies if closing is not None else ():
            self._send(router, p.Reply(rid, 0))
        current.advance(ComputationEvent.CLOSED)
        self.current = None
        self._next()
