"""The scheduler's handling of what server processes report, with incarnation fencing.

A mixin of `SchedulerState` (its attributes are the state's); no I/O, the clock comes in
with every event (``self.now``, set by ``handle``).

Theory of operation (issue 10, exactly-once):
- Every `Setup` gives the process a new incarnation (a number never used before by this
  scheduler). Everything the process reports (`SetupDone`, `JobStarted`, `JobFailed`,
  `JobDone`, `ServerPulse`, `ServerClosed`) carries it; a report is accepted only from the
  incarnation the process record holds now.
- Writing a process off (silent for 5 pulse intervals, or its link lost) fences its
  incarnation for good: the client's router is sent `WrittenOff` with the jobs the
  scheduler knew, and the client (the one place every job is reported to) fences the
  process too and reports each of those jobs not yet ended there as lost, once.
- A report from a written-off incarnation is dropped (logged once per incarnation); while
  the process record still holds that incarnation, the process is told `Fenced` (at most
  once per pulse interval), ends what it runs without reporting it, and answers
  ``ServerClosed(fenced=True)``: then it rejoins, set up again as a new incarnation. An
  idle pulse (nothing installed) from a written-off process, or the process found again
  after its link came back, rejoins it the same way.
- Its event loop (`discoro.cluster.loop_watch`): a heartbeat note (`LoopHeard`) counts as a
  pulse and says how long the loop has not run; a report only a running loop sends (a
  pulse, `SetupDone`, `JobStarted`, `JobFailed`, `JobDone`) or a note with ``stuck`` 0.0
  says it runs again. Each change is logged once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from discoro.cluster import protocol as p
from discoro.cluster.constants import MISSED_PULSES
from discoro.cluster.loop_watch import Change, LoopEvent, LoopHeard, LoopState
from discoro.cluster.scheduler_procs import (
    JobEvent,
    NodeLoad,
    Proc,
    ProcEvent,
    ProcState,
    RunningJob,
    advance,
)
from discoro.cluster.server_lifecycle import BUSY
from discoro.cluster.status import Status
from discoro.core.log import logger
from discoro.net.handlers import exit_notice

#: a process's loop getting stuck and running again is logged at INFO at most this often
LOOP_LOG_QUIET = 60.0

if TYPE_CHECKING:
    from typing import TypeAlias

    from discoro.cluster.nodeinfo import DiscoroNodeInfo
    from discoro.cluster.scheduler_state import Computation, ProcFound
    from discoro.errors import MonitorException

    Report: TypeAlias = (
        p.SetupDone
        | p.JobStarted
        | p.JobFailed
        | p.JobDone
        | p.ServerPulse
        | p.ServerClosed
        | LoopHeard
    )


@dataclass
class EndPassed:
    """The message of a `Send` to the status coroutine: the end of job ``coro_id`` at
    ``location`` as it rode in a `JobDone` (issue 9). The shell sends ``notice`` and counts
    it as that job's end (the network's exit hooks: the client's exactly-once ledger)."""

    location: object
    coro_id: int
    notice: MonitorException


class ProcessEvents:
    """Process reports and losses (a mixin of `SchedulerState`)."""

    me: object  # the scheduler's request coroutine
    now: float
    wall: float
    procs: dict[object, Proc]
    current: Computation | None
    node_load: dict[str, NodeLoad]
    written_off: dict[int, str]  # incarnation -> why it was written off
    idle_pulse_interval: float  # asked of idle processes (0: their default)
    closed_jobs: dict[tuple[object, int], object]  # jobs dropped at a close -> status coro

    def _send(self, to: object, message: object) -> None:
        raise NotImplementedError

    def _status(self, status: int, info: object) -> None:
        raise NotImplementedError

    def _uid_ok(self, uid: str) -> bool:
        raise NotImplementedError

    def _setup(self, proc: Proc, node_setup_args: bytes | None = None) -> None:
        raise NotImplementedError

    def _admit(self, proc: Proc) -> None:
        raise NotImplementedError

    def _node_setup_lost(self, proc: Proc) -> None:
        raise NotImplementedError

    def _node_pulse(self, proc: Proc) -> None:
        raise NotImplementedError

    def ready(self) -> dict[str, list[Proc]]:
        raise NotImplementedError

    # -- which reports count ------------------------------------------------------------------

    def _reporter(self, event: Report) -> Proc | None:
        """The process record ``event`` is a report of, if it is to be accepted: from the
        incarnation the record holds, and not written off (dropped and logged; the process
        is told it is fenced)."""
        proc = self.procs.get(event.location)
        incarnation = getattr(event, "incarnation", 0)
        if incarnation in self.written_off:
            self._fenced_contact(proc, event, incarnation)
            return None
        if proc is None or incarnation != proc.incarnation:
            logger.debug("dropped %r of an old incarnation %d", type(event).__name__, incarnation)
            return None
        return proc

    def _fenced_contact(self, proc: Proc | None, event: Report, incarnation: int) -> None:
        why = self.written_off[incarnation]
        if proc is None or proc.incarnation != incarnation:
            logger.debug("dropped %r of written-off incarnation %d", event, incarnation)
            return
        log = logger.warning if proc.fenced_told is None else logger.debug
        log(
            "dropped %s from %s: its incarnation %d was written off (%s)",
            type(event).__name__,
            proc.location,
            incarnation,
            why,
        )
        pulse = self.current.spec.pulse_interval if self.current is not None else 1.0
        if proc.fenced_told is None or self.now - proc.fenced_told >= pulse:
            proc.fenced_told = self.now
            uid = getattr(event, "uid", None) or ""
            self._send(proc.server, p.Fenced(uid, incarnation, why))

    # -- found, set up, rejoined ----------------------------------------------------------------

    def on_ProcFound(self, event: ProcFound) -> None:
        proc = self.procs.get(event.location)
        if proc is not None and proc.state not in (ProcState.DISCONNECTED, ProcState.CLOSED):
            return
        self._renew(event.location, event.server)

    def _renew(self, location: object, server: object) -> None:
        """A fresh record for the process at ``location`` (found, or rejoined), set up for
        the current computation if there is one."""
        proc = self.procs[location] = Proc(location, server)
        if self.me is not None:
            # idle pulses: figures for status pages
            self._send(proc.server, p.Watch(self.me, self.idle_pulse_interval))
        if self.current is not None:
            self._admit(proc)  # through its node's gates (`discoro.cluster.node_gates`)

    def _rejoin(self, proc: Proc) -> None:
        logger.info(
            "process %s rejoins (incarnation %d was written off)", proc.location, proc.incarnation
        )
        advance(proc, ProcEvent.REJOINED)
        self._renew(proc.location, proc.server)

    def on_SetupDone(self, event: p.SetupDone) -> None:
        proc = self._reporter(event)
        if proc is None or proc.state is not ProcState.INITIALIZING:
            return
        self._loop_ran(proc)
        if self._uid_ok(event.uid) and event.error.startswith(BUSY):
            # still closing an earlier computation (its client just ended): a later tick
            # tries again, without a status
            advance(proc, ProcEvent.BUSY)
            proc.busy = True
            return
        if not self._uid_ok(event.uid) or event.error:
            advance(proc, ProcEvent.SETUP_REFUSED)
            if event.error and self.current is not None:
                self._status(Status.ProcIgnore, proc.location)
                spec = self.current.spec
                why = f"server {proc.location} is not used: its setup failed: {event.error}"
                self._send(spec.router, p.Output(proc.location, spec.uid, "log", why, 30))
                self._node_setup_lost(proc)
            return
        if not any(
            other.state is ProcState.INITIALIZED
            for other in self.procs.values()
            if other.addr == proc.addr
        ):
            self._status(Status.NodeInitialized, self.node_info_of(proc.addr))
        advance(proc, ProcEvent.SETUP_DONE)
        proc.last_heard = self.now
        self._status(Status.ProcInitialized, proc.location)
        self._introduce_peers(proc)

    def _introduce_peers(self, proc: Proc) -> None:
        """``peers_communicate``: a process just set up connects to the others ready."""
        assert self.current is not None
        if not getattr(self.current.spec, "peers_communicate", False):
            return
        others = [
            other.location
            for group in self.ready().values()
            for other in group
            if other is not proc
        ]
        if others:
            self._send(proc.server, p.Peers(self.current.spec.uid, others))

    # -- lost ---------------------------------------------------------------------------------

    def _write_off(self, proc: Proc, why: str) -> None:
        """``proc`` is lost: fence its incarnation, report its jobs once (to the client's
        router, `WrittenOff`), and mark it disconnected."""
        if proc.state is ProcState.DISCONNECTED:
            return
        was_active = proc.active
        advance(proc, ProcEvent.WRITTEN_OFF)
        if proc.incarnation:
            self.written_off[proc.incarnation] = why
        jobs, runs = proc.take_all(JobEvent.WRITTEN_OFF)
        current = self.current
        if current is None or not was_active:
            return
        self._node_setup_lost(proc)
        logger.warning(
            "process %s (incarnation %d) written off: %s; %d job(s) reported lost",
            proc.location,
            proc.incarnation,
            why,
            len(jobs),
        )
        coros = [info.coro for info in jobs.values()]
        reason = f"process {proc.location} was lost: {why}"
        router = current.spec.router
        self._send(router, p.WrittenOff(proc.location, proc.incarnation, reason, coros))
        lost = f"process {proc.location} was lost"
        for rid, kind in runs.items():  # sent there, never started: answered now
            if kind != "each":  # a fan-out's other processes answer; its wait ends it
                self._send(router, p.Reply(rid, None, lost))
        for info in jobs.values():
            if info.kind == "result":  # its value will never come
                self._send(router, p.JobLost(info.rid, lost))
        self._status(Status.ProcDisconnected, proc.location)
        if not any(other.active for other in self.procs.values() if other.addr == proc.addr):
            self._status(Status.NodeDisconnected, self.node_info_of(proc.addr))

    def _lose_silent(self) -> None:
        current = self.current
        if current is None:
            return
        limit = MISSED_PULSES * current.spec.pulse_interval
        for proc in list(self.procs.values()):
            silence = self.now - proc.last_heard
            if proc.active and silence > limit:
                self._write_off(proc, f"silent for {silence:.1f} s")

    # -- reports ------------------------------------------------------------------------------

    def on_ServerPulse(self, event: p.ServerPulse) -> None:
        proc = self.procs.get(event.location)
        if proc is None:
            return
        if event.load:
            proc.load_figures = dict(event.load)
            proc.updated = self.wall
            self.node_load[proc.addr] = NodeLoad(proc.load_figures, proc.updated)
            self._node_pulse(proc)
        proc = self._pulsed(proc, event)
        if proc is not None:
            self._loop_ran(proc)  # its pulser runs on its loop

    def on_LoopHeard(self, event: LoopHeard) -> None:
        """A heartbeat note (or a fresh window): a pulse that says how its loop fares."""
        proc = self.procs.get(event.location)
        if proc is None:
            return
        proc = self._pulsed(proc, event)
        if proc is not None and event.stuck is not None:
            change = proc.loop.noted(event.stuck, event.sent, self.now)
            if change is not None:
                self._loop_changed(proc, change)

    def _pulsed(self, proc: Proc, event: p.ServerPulse | LoopHeard) -> Proc | None:
        """``proc`` was heard from (``event``); the record if the report is accepted."""
        if event.uid is None:  # idle: nothing installed
            if proc.state is ProcState.DISCONNECTED:
                self._rejoin(proc)
            return None
        reporter = self._reporter(event)
        if reporter is not None:
            reporter.last_heard = self.now
        return reporter

    def _loop_ran(self, proc: Proc) -> None:
        """``proc`` sent what only its running event loop sends."""
        change = proc.loop.heard(LoopEvent.LOOP_RAN, self.now)
        if change is not None:
            self._loop_changed(proc, change)

    def _loop_changed(self, proc: Proc, change: Change) -> None:
        """Say once per change that a process's loop got stuck or runs again (placement
        avoids it meanwhile: `discoro.cluster.placement`). A loop that gets stuck again and
        again (a job that blocks for a second between yields) is logged at INFO once per
        `LOOP_LOG_QUIET` seconds, each episode's start and end alike; the rest at DEBUG."""
        loop = proc.loop
        if change.state is LoopState.STUCK:
            loop.loud = self.now - loop.loud_at >= LOOP_LOG_QUIET
            if loop.loud:
                loop.loud_at = self.now
        log = logger.info if loop.loud else logger.debug
        if change.state is LoopState.STUCK:
            log(
                "process %s is busy in user code (its event loop has not run for %.1f s): "
                "new runs go to other processes while it is",
                proc.location,
                change.stuck_for,
            )
        else:
            log(
                "process %s runs again (its event loop was stuck for %.1f s)",
                proc.location,
                change.stuck_for,
            )

    def on_ServerClosed(self, event: p.ServerClosed) -> None:
        proc = self.procs.get(event.location)
        if (
            proc is not None
            and event.fenced
            and proc.incarnation == event.incarnation
            and proc.state is ProcState.DISCONNECTED
        ):
            self._rejoin(proc)
            return
        proc = self._reporter(event)
        if proc is None or not self._uid_ok(event.uid):
            return
        if proc.active:
            advance(proc, ProcEvent.CLOSED)
            proc.take_all(JobEvent.DONE)  # the server told their monitors
            self._status(Status.ProcClosed, proc.location)
            node = [other for other in self.procs.values() if other.addr == proc.addr]
            if all(other.state is not ProcState.INITIALIZED for other in node):
                self._status(Status.NodeClosed, self.node_info_of(proc.addr))
        if not any(other.active for other in self.procs.values()):
            self._close_idle()

    def _close_idle(self) -> None:
        raise NotImplementedError

    def node_info_of(self, addr: str) -> DiscoroNodeInfo:
        raise NotImplementedError

    def on_JobStarted(self, event: p.JobStarted) -> None:
        if event.reply_to is not None:  # the client's answer rode along: pass it on (its
            # router's ledger reports the job lost at once if that incarnation is fenced)
            result = p.RunResult(
                event.rid, event.coro, None, event.fanout, event.location, event.incarnation
            )
            self._send(event.reply_to, result)
        proc = self._reporter(event)
        if proc is None or not self._uid_ok(event.uid) or not proc.active:
            return
        kind = getattr(event, "kind", "cpu")
        info = RunningJob(
            event.coro, event.func_name, event.args_repr, event.start_time, event.rid, kind
        )
        proc.run_started(event.rid, event.coro._id, info)
        proc.submitted += 1
        proc.last_heard = proc.last_started = self.now
        self._loop_ran(proc)

    def on_JobFailed(self, event: p.JobFailed) -> None:
        proc = self._reporter(event)
        if proc is not None:
            proc.run_failed(event.rid)
            self._loop_ran(proc)

    def on_JobsDone(self, event: p.JobsDone) -> None:
        """The jobs that ended in one server loop turn, in order: one event, so the batch
        costs one pass of the state machine, not one per job (issue 9)."""
        for done in event.dones:
            self.on_JobDone(done)

    def on_JobDone(self, event: p.JobDone) -> None:
        started = getattr(event, "started", None)
        if started is not None:  # the start rode along: as if it had come first, on its own
            self.on_JobStarted(started)
        proc = self._reporter(event)
        known = False
        if proc is not None:
            self._loop_ran(proc)
        if proc is not None and proc.job_done(event.coro_id):
            proc.done += 1
            known = True
        if event.exit is None:
            return
        # the job's end for the status coroutine (issue 9): to the current one while the job
        # runs here, to that of a closed computation for a job dropped at the close; never
        # from a written-off incarnation (the client reports those jobs lost, once)
        key = (event.location, event.coro_id)
        status = self.closed_jobs.pop(key, None)
        if getattr(event, "incarnation", 0) in self.written_off:
            return
        if known and self.current is not None and self._uid_ok(event.uid):
            status = self.current.spec.status_coro
        if status is not None:
            observed, fields, payload = event.exit
            notice = exit_notice(observed, fields, payload)
            self._send(status, EndPassed(event.location, event.coro_id, notice))
