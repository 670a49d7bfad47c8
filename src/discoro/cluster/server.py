"""The server process (reference 3.6, 3.7): one coroutine registered as ``discoro_proc``.

It is the thin shell around `ServerState`: it receives the protocol messages of
`discoro.cluster.protocol`, asks the state what to do, and does it (install a `Namespace`,
create job coroutines, send replies and reports). Messages it handles:

- `Setup`: refused with ``SetupDone(error=...)`` while another computation is installed or
  the process quits; else files and code go into a fresh namespace, ``SetupDone`` goes to
  ``Setup.scheduler`` and a pulser sends ``ServerPulse`` every pulse interval.
- Setup hooks (later versions, `discoro.cluster.setup_hooks`): a `Setup` with
  ``node_setup_args`` runs the computation's node_setup here first and answers
  `NodeSetupDone` with the globals it made (a `Setup` with ``node_globals`` installs them);
  with ``server_setup`` the server runs it (after `EnableServer` when ``disable_servers``)
  before ``SetupDone``. A failing hook: the failure goes to the scheduler, and the
  computation is uninstalled here. `Peers` (``peers_communicate``): connect to those servers.
- `Run`: runs the function as a job coroutine; its replies, reports and end are the job half
  of this class, `discoro.cluster.server_jobs.ServerJobs` (read its docstring).
- `Close`: jobs are terminated, the namespace is closed, ``ServerClosed`` goes to the
  scheduler. The computation also closes by itself (``ServerClosed(idle=True)``) after its
  zombie period without jobs, and without a report when the scheduler is unreachable for 5
  pulse intervals or its process goes offline: then each job's monitors (the client's
  status coroutine, its ``monitor()`` callers) hear it failed with `SchedulerLost`.
- `Fenced` (the scheduler wrote this incarnation off), or a `Setup` of the installed
  computation with a higher incarnation: its jobs end without a report to anyone (they were
  reported lost), ``ServerClosed(fenced=True)`` goes to the scheduler, and the next
  incarnation is installed only once those jobs have ended, so every frame they send still
  carries the written-off incarnation (`discoro.net.fencing`). The logic is a transition
  table (`discoro.cluster.server_lifecycle`); this shell performs its actions.
- `Watch`: while no computation is installed, send ``Watch.scheduler`` a ``ServerPulse``
  (``uid`` None, with the node figures) every `IDLE_PULSE_INTERVAL` seconds, so status pages
  show idle nodes; one watcher at a time (a newer `Watch` replaces the scheduler), stopped
  when that scheduler's peer goes offline or a send to it fails.
- Liveness: a heartbeat thread (`discoro.cluster.server_liveness`) tells the scheduler and
  the client that this process lives while a job keeps the loop busy, and ends the process
  when a coroutine terminated here cannot be reached for `TERMINATE_GRACE` seconds. The
  pulser counts the scheduler's own liveness notes as delivery (its loop may be busy too).
- Announcements: the process keeps announcing itself with backoff (1 s doubling to 30 s,
  started over when a computation closes or its scheduler is lost), so after a partition
  it is found again.
- `Quit`: no more `Setup`/`Run`; running jobs finish; then the coroutine ends (the process
  exits).
- From the node's operator (`drain`, `retire`, `report_status`, callable from any thread):
  close the computation once its jobs are done and take no new job meanwhile; take no more
  computations (with the reason); say in one line what this process does. The node's rules
  (`NodeRules`: ``--serve``, ``--zombie_period``, pulse bounds, ``--msg_timeout``) are applied
  by `ServerState`. Each install and close is told to ``events`` (the node counts computations
  served from them).

Everything runs on the kernel's loop thread; sends are fire-and-forget (FIFO per peer pair),
only pulses wait for delivery.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from discoro.cluster import procdir, server_liveness, sources
from discoro.cluster import protocol as p
from discoro.cluster import server_lifecycle as lc
from discoro.cluster import setup_hooks as hooks
from discoro.cluster.constants import SERVER_NAME, MinPulseInterval, MsgTimeout
from discoro.cluster.load import LoadMeter
from discoro.cluster.namespace import Namespace
from discoro.cluster.output import OutputCapture
from discoro.cluster.server_job import ServerJob
from discoro.cluster.server_jobs import JobExit, JobsIdle, ServerJobs, same_process
from discoro.cluster.server_state import (
    Installed,
    NodeRules,
    PulseTracker,
    SchedulerLost,
    ServerState,
)
from discoro.core.coro import Coro
from discoro.core.log import logger
from discoro.core.stalls import ran_late
from discoro.errors import MonitorException
from discoro.net.location import PeerStatus
from discoro.net.runtime import ask_network, network_of, on_network

if TYPE_CHECKING:
    from collections.abc import Callable

    from discoro.core.kernel import AsynCoro
    from discoro.net.held import HeldSend, LoopHeld
    from discoro.net.threaded import ThreadedNetwork

IDLE_PULSE_INTERVAL = MinPulseInterval * 2  # pulses to a `Watch` scheduler while idle
FENCED_JOBS_WAIT = 5.0  # how long a new incarnation waits for the written-off one's jobs


@dataclass
class PulseLost:
    """Internal: the pulser gave up on the scheduler of computation ``uid``."""

    uid: str


@dataclass
class Abort:
    """Internal: terminate every job and end now (a second interrupt)."""


@dataclass
class OperatorRequest:
    """Internal: the node's operator asks to ``drain``, ``retire`` (with ``reason``) or for a
    ``status`` line."""

    what: str
    reason: str = ""


class Server(ServerJobs):
    """The logic of one server process; `start` runs it as the ``discoro_proc`` coroutine."""

    def __init__(
        self,
        kernel: AsynCoro,
        workdir: str | Path,
        clock: Callable[[], float] = time.monotonic,
        node_dir: str | Path | None = None,
        rules: NodeRules | None = None,
        events: Callable[[str, str], None] | None = None,
    ) -> None:
        """``clock``: the monotonic time of the state's deadlines (pulses, zombie period);
        tests pass a manual one. ``node_dir``: the node directory (the parent of the working
        directories of the node's servers), where computation files go too.
        ``events(kind, text)`` hears ``installed``/``closed`` (the computation's uid) and
        ``status`` (the line `report_status` asked for)."""
        self.kernel = kernel
        self.clock = clock
        self.workdir = Path(workdir)
        self.node_dir = Path(node_dir) if node_dir is not None else None
        self.state = ServerState(rules)
        self.events = events
        self.namespace: Namespace | None = None
        self.coro: Coro | None = None
        self.location: Any = None
        self.output: OutputCapture | None = None  # remote output of the installed computation
        self.watched: Any = None  # the scheduler of the latest `Watch` (idle pulses)
        self.watcher: Coro | None = None  # the coroutine sending them
        self.watch_interval: float = IDLE_PULSE_INTERVAL  # between them
        self.ended: deque[int] = deque()  # ids of ended jobs still in the network's ended_coros
        self.sources: dict[str, list[str]] = {}  # source text in linecache (`sources.register`)
        self.fenced_jobs: list[Coro] = []  # jobs of a written-off incarnation still ending
        self.results: dict[int, tuple[int, Coro]] = {}  # job id -> (rid, router): JobValue due
        self.held_starts: dict[int, HeldSend] = {}  # job id -> its start report, held
        self.done_batch: HeldSend | None = None  # this loop turn's `JobDone`s, held
        self.holds: ThreadedNetwork | LoopHeld | None = None  # where they are (`_holds`)
        self.merged_for: tuple[object, object, bool] | None = None  # (`_merged`)
        self._registered = threading.Event()  # `_main` has tried to register its name

    def start(self) -> Coro:
        """Run the server coroutine. Called off the loop thread (the server program's main
        thread), it returns once the coroutine is registered as ``discoro_proc`` (or failed
        to), so a "ready" line printed after it means the server can be located: the
        coroutine starts on the loop thread a few loop turns later, and a peer that dialled
        this process on its announcement may ask for it before that."""
        self.coro = Coro(self._main)
        if not self.kernel.on_loop_thread() and not self._registered.wait(MsgTimeout):
            logger.warning("discoro_proc: not registered within %g s of its start", MsgTimeout)
        return self.coro

    def quit(self) -> None:
        """Ask the server to quit (callable from any thread)."""
        if self.coro is not None:
            self.coro.send(p.Quit())

    def abort(self) -> None:
        if self.coro is not None:
            self.coro.send(Abort())

    def drain(self) -> None:
        """Close the computation once its jobs are done; no new job meanwhile."""
        if self.coro is not None:
            self.coro.send(OperatorRequest("drain"))

    def retire(self, reason: str) -> None:
        """Take no more computations (``reason`` goes to the schedulers that ask)."""
        if self.coro is not None:
            self.coro.send(OperatorRequest("retire", reason))

    def report_status(self) -> None:
        """Tell ``events`` one ``status`` line: what this process does now."""
        if self.coro is not None:
            self.coro.send(OperatorRequest("status"))

    def _tell(self, kind: str, text: str) -> None:
        if self.events is not None:
            try:
                self.events(kind, text)
            except Exception:
                logger.exception("discoro_proc: cannot report %s %s", kind, text)

    def status_line(self) -> str:
        current = self.state.current
        head = f"{self.kernel.name} at {self.location}, pid {os.getpid()}"
        if current is None:
            return f"{head}: not currently used"
        where = getattr(current.scheduler, "location", current.scheduler)
        closing = ", closing" if self.state.draining else ""
        return (
            f"{head}: {len(current.jobs)} coroutine(s) running for the scheduler at "
            f"{where}{closing}"
        )

    def _operator(self, request: OperatorRequest) -> None:
        if request.what == "drain":
            current = self.state.current
            if self.state.drain() and current is not None:
                logger.info("closing computation %s when its jobs are done", current.uid)
        elif request.what == "retire":
            self.state.retired = request.reason or "the node takes no more computations"
        elif request.what == "status":
            self._tell("status", self.status_line())

    # -- the coroutine -----------------------------------------------------------------------

    async def _main(self, coro: Any = None) -> None:
        registered = coro.register(SERVER_NAME)
        self._registered.set()
        if registered != 0:
            raise RuntimeError(f"another coroutine is registered as {SERVER_NAME}")
        self.location = self.kernel.location
        self.kernel.peer_status(coro)
        server_liveness.start(self.kernel)  # heartbeats that busy jobs cannot stop
        self._announce()
        try:
            while not self.state.may_exit():
                message = await coro.receive(self.state.wait_time(self.clock()))
                if message is not None:
                    try:
                        self._handle(message)
                    except Exception:
                        logger.exception("discoro_proc: cannot handle %r", message)
                self._perform(self.state.handle(lc.Tick(self.clock())))  # the zombie period
        finally:
            self.watched = None
            if self.watcher is not None:
                self.watcher.terminate()
            self._perform(self.state.handle(lc.AbortAsked(self.clock())))
            self.kernel.unsubscribe_peer_status(coro)
            coro.unregister(SERVER_NAME)

    def _handle(self, message: Any) -> None:
        """Turn ``message`` into a lifecycle event, and perform what the state decides."""
        if type(message) is p.Runs:  # several runs placed in one scheduler turn
            for run in message.runs:
                self._handle(run)
            return
        now = self.clock()
        if isinstance(message, MonitorException):
            self._send_value(message)
            event: object = lc.JobEnded(getattr(message.args[0], "_id", -1), now)
        elif isinstance(message, p.Run):
            # a job that ended is off the books already (its on_done, at its end), so a
            # CPU-bound job that just finished never counts as load for this run
            event = lc.RunAsked(message.uid, now)
        elif isinstance(message, p.Setup):
            incarnation = getattr(message, "incarnation", 0)
            interval = getattr(message.spec, "pulse_interval", None)
            event = lc.SetupAsked(message.spec.uid, incarnation, now, interval)
        elif isinstance(message, p.Close):
            event = lc.CloseAsked(message.uid, now)
        elif isinstance(message, p.Fenced):
            event = lc.FencedAsked(message.incarnation, message.reason or "written off", now)
        elif isinstance(message, p.Watch):
            self._watch(message.scheduler, message.interval)
            return
        elif isinstance(message, p.EnableServer):
            current = self.state.current
            if current is not None and current.uid == message.uid and current.preparer:
                current.preparer.send(message)
            return
        elif isinstance(message, p.Peers):
            current = self.state.current
            if current is not None and current.uid == message.uid:
                Coro(self._introduce, list(message.locations))
            return
        elif isinstance(message, PeerStatus):
            if message.status != PeerStatus.Offline:
                return
            if self.watched is not None and message.location == self.watched.location:
                self.watched = None
            current = self.state.current
            if current is None or message.location != current.scheduler.location:
                return
            logger.warning("scheduler %s went offline; closing", message.location)
            why = f"the scheduler at {message.location} went offline"
            event = lc.SchedulerGone(current.uid, why, now)
        elif isinstance(message, PulseLost):
            current = self.state.current
            if current is None or current.uid != message.uid:
                return
            logger.warning("scheduler unreachable for too long; closing %s", message.uid)
            where = current.scheduler.location
            why = f"the scheduler at {where} was unreachable for too long"
            event = lc.SchedulerGone(message.uid, why, now)
        elif isinstance(message, p.Quit):
            event = lc.QuitAsked(now)
        elif isinstance(message, Abort):
            event = lc.AbortAsked(now)
        elif isinstance(message, OperatorRequest):
            self._operator(message)
            return
        elif isinstance(message, JobsIdle):
            return  # the caller's Tick looks at idleness
        else:
            logger.warning("discoro_proc ignores unexpected message %r", message)
            return
        self._perform(self.state.handle(event), message)

    def _perform(self, actions: list[lc.Action], message: Any = None) -> None:
        """Do what the lifecycle decided (``message``: the request it answers, if any)."""
        for action in actions:
            if type(action) is lc.StartJob:  # the two of every run first
                self._start_job(message)
            elif type(action) is lc.ReportJobDone:
                ended = message if isinstance(message, JobExit) else None
                self._report_job_done(action.record, action.coro_id, ended)
            elif isinstance(action, lc.AnswerSetup):
                uid = message.spec.uid
                done = p.SetupDone(self.location, uid, action.error, action.incarnation)
                self._to_scheduler(message.scheduler, done)
            elif isinstance(action, lc.InstallComputation):
                self.fenced_jobs = [job for job in self.fenced_jobs if not job._done]
                if self.fenced_jobs:  # a new tag only once the old jobs can send nothing more
                    Coro(self._install_after_fenced_jobs, message, action.incarnation)
                else:
                    self._install(message, action.incarnation)
            elif isinstance(action, lc.RefuseRun):
                self._refuse_run(message, action.reason)
            elif isinstance(action, lc.CloseComputation):
                self._teardown(action)

    # -- setup ---------------------------------------------------------------------------------

    async def _install_after_fenced_jobs(
        self, setup: p.Setup, incarnation: int, coro: Any = None
    ) -> None:
        """Install once the jobs of the written-off incarnation have ended (at most
        `FENCED_JOBS_WAIT` s), so nothing they send goes out under the new incarnation."""
        coro.set_daemon()
        deadline = self.clock() + FENCED_JOBS_WAIT
        while any(not job._done for job in self.fenced_jobs) and self.clock() < deadline:
            await coro.sleep(0.01)
        if any(not job._done for job in self.fenced_jobs):
            logger.warning("jobs of a written-off incarnation still run; installing anyway")
        self.fenced_jobs = []
        if self.state.current is None and not self.state.quitting:
            self._install(setup, incarnation)

    def _install(self, setup: p.Setup, incarnation: int) -> None:
        spec = setup.spec
        namespace = Namespace(self.workdir, self.node_dir)
        self.sources = sources.register(getattr(spec, "sources", {}))
        try:
            namespace.install(spec.code, spec.files)
            node_globals = getattr(setup, "node_globals", None)
            if node_globals:
                hooks.install_globals(namespace, node_globals)
        except Exception:
            text = traceback.format_exc()
            logger.warning("setup of computation %s failed:\n%s", spec.uid, text)
            sources.unregister(self.sources)
            self.sources = {}
            namespace.close()
            setup.scheduler.send(p.SetupDone(self.location, spec.uid, text, incarnation))
            return
        self.namespace = namespace
        current = self.state.record(
            spec.uid,
            setup.scheduler,
            spec.pulse_interval,
            spec.zombie_period,
            spec.status_coro,
            self.clock(),
            incarnation,
        )
        current.router = spec.router
        current.merge_exits = same_process(spec.status_coro, setup.scheduler)
        # every frame from now on says it comes from this incarnation (`discoro.net.fencing`)
        # (on the network's loop, in order with the sends before it: they keep the old tag)
        on_network(self.kernel, setattr, network_of(self.kernel).fences, "own", incarnation)
        node_setup_args = getattr(setup, "node_setup_args", None)
        hooked = node_setup_args is not None or bool(getattr(spec, "server_setup", None))
        # without setup hooks the Setup is answered now; with them, once they ran (`_prepare`)
        installed = lc.SetupSucceeded(current, self.clock(), answer=not hooked)
        self._perform(self.state.handle(installed), setup)
        current.pulser = Coro(self._pulse, current)
        if getattr(spec, "remote_output", True) and spec.router is not None:
            self.output = OutputCapture(
                self.kernel, self.location, spec.uid, spec.router, self._is_internal
            )
            self.output.install()
        if node_setup_args is not None or getattr(spec, "server_setup", None):
            current.preparer = Coro(self._prepare, setup, current)
        logger.debug("computation %s installed (incarnation %d)", spec.uid, incarnation)
        self._tell("installed", spec.uid)

    async def _prepare(self, setup: p.Setup, current: Installed, coro: Coro | None = None) -> None:
        """Run the computation's setup hooks here (`discoro.cluster.setup_hooks`); report
        `NodeSetupDone` / `SetupDone`; on a failure, uninstall the computation."""
        assert coro is not None
        coro.set_daemon()
        spec, namespace = setup.spec, self.namespace
        assert namespace is not None
        if setup.node_setup_args is not None and spec.node_setup:
            before = hooks.snapshot(namespace)
            error = await hooks.run_hook(
                namespace,
                spec.node_setup,
                setup.node_setup_args,
                coro,
                getattr(spec, "setup_timeout", None),
                self.node_dir,  # its working directory is the node directory (3.4)
            )
            data = b""
            if error is None:
                try:
                    data = hooks.changed_globals(namespace, before)
                except ValueError as exc:
                    error = f"{spec.node_setup}: {exc}"
            if self.state.current is not current:
                return
            setup.scheduler.send(p.NodeSetupDone(self.location, spec.uid, data, error or ""))
            if error is not None:
                logger.debug("node_setup failed; not serving %s:\n%s", spec.uid, error)
                current.preparer = None
                self._setup_failed(spec.uid, "its node_setup failed")
                return
        if spec.server_setup:
            args = b""
            if spec.disable_servers:
                enable = await hooks.wait_for(coro, p.EnableServer)
                args = getattr(enable, "args", b"")
            timeout = getattr(spec, "setup_timeout", None)
            error = await hooks.run_hook(namespace, spec.server_setup, args, coro, timeout)
            if self.state.current is not current:
                return
            if error is not None:
                logger.debug("server_setup failed; not serving %s:\n%s", spec.uid, error)
                failed = p.SetupDone(self.location, spec.uid, error, current.incarnation)
                setup.scheduler.send(failed)
                current.preparer = None
                self._setup_failed(spec.uid, "its server_setup failed")
                return
        current.preparer = None
        setup.scheduler.send(p.SetupDone(self.location, spec.uid, "", current.incarnation))

    def _setup_failed(self, uid: str, why: str) -> None:
        """A setup hook failed: uninstall the computation (the scheduler was told)."""
        self._perform(self.state.handle(lc.SetupFailed(uid, why, self.clock())))

    async def _introduce(self, locations: list[object], coro: Coro | None = None) -> None:
        """Connect to the computation's other servers (``peers_communicate``)."""
        assert coro is not None
        coro.set_daemon()
        for location in locations:
            if location != self.location and await self.kernel.peer(location) != 0:
                logger.debug("peers_communicate: cannot reach %s", location)

    async def _pulse(self, current: Installed, coro: Any = None) -> None:
        coro.set_daemon()
        interval = current.pulse_interval
        tracker = PulseTracker(interval, self.clock())
        name = self.kernel.name or ""
        meter = LoadMeter(self.workdir, name, name.rpartition("-")[0] or name)
        step = time.monotonic()  # real time, for the stall rule (`core.stalls`)
        while self.state.current is current:
            load = meter.measure()  # cheap: psutil without blocking
            pulse = p.ServerPulse(
                self.location, current.uid, len(current.jobs), load, current.incarnation
            )
            wait = min(interval, self.state.rules.msg_timeout)
            delivered = await current.scheduler.deliver(pulse, timeout=wait)
            if self.state.current is not current:
                break
            previous, step = step, time.monotonic()
            liveness = network_of(self.kernel).liveness
            if delivered == 1 or liveness.heard_within(current.scheduler.location, interval):
                tracker.delivered(self.clock())  # delivered, or its process is busy but alive
            elif tracker.given_up(self.clock(), ran_late(previous, step, 2 * interval)):
                self.coro.send(PulseLost(current.uid))  # type: ignore[union-attr]
                break
            await coro.sleep(interval)

    def _watch(self, scheduler: Any, interval: float = 0.0) -> None:
        self.watched = scheduler
        self.watch_interval = interval or IDLE_PULSE_INTERVAL
        if scheduler is not None and self.watcher is None:
            self.watcher = Coro(self._idle_pulse)

    async def _idle_pulse(self, coro: Any = None) -> None:
        coro.set_daemon()
        name = self.kernel.name or ""
        meter = LoadMeter(self.workdir, name, name.rpartition("-")[0] or name)
        try:
            while self.watched is not None:
                if self.state.current is None:  # else the computation's pulser reports
                    pulse = p.ServerPulse(self.location, None, 0, meter.measure())
                    scheduler = self.watched
                    if scheduler.send(pulse) < 0 and self.watched is scheduler:
                        logger.debug("idle pulses to %s stopped: send failed", scheduler)
                        self.watched = None
                        break
                await coro.sleep(self.watch_interval)
        finally:
            if self.watcher is coro:
                self.watcher = None

    def _reachable(self, coro: Coro) -> bool:
        """Whether a message to ``coro`` can go now (local, or its process is linked)."""
        if not coro.is_remote:
            return True
        peer = network_of(self.kernel).peers.get(coro.location)
        return peer is not None and bool(peer.online)

    def _announce(self) -> None:
        """Announce this process again, with backoff from 1 s (`Discovery.keep_announcing`),
        so a scheduler that lost it (a partition) finds it again once the network heals."""
        discovery = getattr(network_of(self.kernel), "discovery", None)
        if discovery is not None and not self.state.quitting:
            on_network(self.kernel, discovery.keep_announcing)

    # -- close -------------------------------------------------------------------------------

    def _remove_node_files(self) -> None:
        """Remove the files sent to the node's `NodeLocation` that this process received
        (D8: the node directory holds them for the computation that closes)."""
        if self.node_dir is not None:
            files = ask_network(self.kernel, network_of(self.kernel).take_node_files)
            procdir.remove_received(files, self.node_dir)

    def _teardown(self, close: lc.CloseComputation) -> None:
        """Tear the closed computation down; ``close.how`` says how its jobs end and what the
        scheduler is told (`discoro.cluster.server_lifecycle.CloseComputation`)."""
        current, how = close.record, close.how
        if how == "fenced":
            logger.warning(
                "incarnation %d of computation %s was written off (%s); ending its %d job(s)",
                current.incarnation,
                current.uid,
                close.reason,
                len(current.jobs),
            )
        ended_coros = self.kernel.network().ended_coros
        if how == "fenced":
            self.fenced_jobs.extend(current.jobs.values())
            for job_id in current.jobs:
                self.results.pop(job_id, None)  # reported lost: no value follows
        for job in list(current.jobs.values()):
            if how != "fenced" and current.merge_exits and current.status_coro is not None:
                job.notify(current.status_coro)  # no JobDone now: it hears of the end itself
            if how in ("lost", "fenced") and isinstance(job, ServerJob):
                error = SchedulerLost(f"{close.reason}; {self.location} ended the coroutine")
                job.end_lost(error, _nowhere if how == "fenced" else self._reachable)
            else:
                job.terminate()
            ended_coros.pop(job.id, None)
        current.jobs.clear()
        while self.ended:
            ended_coros.pop(self.ended.popleft(), None)
        if current.pulser is not None:
            current.pulser.terminate()
        preparer, current.preparer = current.preparer, None
        if preparer is not None:
            preparer.terminate()
        output, self.output = self.output, None
        if output is not None:
            output.close()
        sources.unregister(self.sources)
        self.sources = {}
        namespace, self.namespace = self.namespace, None
        if namespace is not None:
            try:
                namespace.close()
            except Exception:
                logger.exception("cleaning up computation %s failed", current.uid)
        self._remove_node_files()
        self._announce()  # something changed: be found again soon (e.g. after a partition)
        if how != "lost":
            idle, fenced = how == "idle", how == "fenced"
            closed = p.ServerClosed(self.location, current.uid, idle, current.incarnation, fenced)
            self._to_scheduler(current.scheduler, closed)
        logger.debug("computation %s closed (%s)", current.uid, how)
        self._tell("closed", current.uid)


def _nowhere(coro: Coro) -> bool:
    """No monitor is reachable (a written-off incarnation's jobs end unreported)."""
    return False
