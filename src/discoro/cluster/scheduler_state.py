"""The scheduler's logic as a state machine: ``handle(event) -> actions``, no I/O.

State: the processes (grouped into nodes by address), the FIFO of submitted computations
and the current one. Events are what the shell received (protocol messages, peers found or
lost, clock ticks); actions are messages for the shell to send. Tested without a network.

Invariants:
- One computation is current at a time; it reserves every process. The next in the queue
  becomes current only when the current one closes (or its client is lost).
- A process is set up for the current computation once; only INITIALIZED processes on
  nodes that have one are eligible for runs. Load = runs dispatched but not ended; a CPU
  job (``run``, ``run_at``, ``run_result*``) holds its process's one CPU slot until it ends
  (`discoro.cluster.slots`).
- Each process and each node is announced (``ServerDiscovered``; ``NodeDiscovered`` for the
  first of a node, with a `DiscoroNodeInfo`) before its setup, for every computation.
- An explicit close waits for the CPU jobs (`discoro.cluster.closing`); every process the
  computation used hears ``Close``, and the status coroutine gets the close-time statuses
  before the close is answered. Only a lost client detaches the status coroutine.
- A run that no process can take yet is held (`discoro.cluster.placement`) until one can
  (a fan-out: until the computation's timeout passes); every request gets exactly one
  answer (the runs, or a `Reply` with the reason), also when the computation closes while
  it waits, and also when the process it went to is lost before it started.
- A process silent for more than 5 pulse intervals is treated as lost: its status becomes
  disconnected and each of its running coroutines is reported failed to the status coroutine
  (and a ``run_result*`` waiting for one hears `JobLost`).
- Status bookkeeping (for `discoro.cluster.snapshot`): per process, ``submitted`` counts
  `JobStarted`, ``done`` counts `JobDone` of a job it knew, ``jobs`` holds the running ones
  (``submitted >= done + len(jobs)``: jobs dropped at a close or loss are neither); the
  latest `ServerPulse.load` figures and their wall-clock time are kept per process and per
  node (``node_load``; a node's figures are whichever of its processes reported last).
  Every process found is sent `Watch`, so it pulses (``uid`` None) while idle too; pulses
  are recorded whatever the process's state, and only processes active in the current
  computation are lost for silence.
- A job's end rides in `JobDone` (``exit``) when the status coroutine lives in this process:
  it is passed on to the status coroutine at most once, and never for a job already
  reported lost; the end of a job dropped at a close still reaches the status coroutine
  (`closed_jobs`), as it would have straight from the server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from discoro.cluster import protocol as p
from discoro.cluster.closing import CloseRules, PendingClose
from discoro.cluster.constants import MISSED_PULSES
from discoro.cluster.node_gates import NodeGates
from discoro.cluster.node_gates import ProcState as ProcState
from discoro.cluster.placement import RunPlacement, WaitingRun
from discoro.cluster.server_state import BUSY
from discoro.cluster.status import Status, StatusMessage
from discoro.errors import MonitorException
from discoro.net.handlers import exit_notice

if TYPE_CHECKING:
    from collections.abc import Callable

    from discoro.cluster.nodeinfo import DiscoroNodeInfo
    from discoro.net.location import Location


CLOSED_JOBS_KEPT = 10_000  # jobs of closed computations whose end is still forwarded


class ProcessLost(Exception):
    """A remote coroutine's process went away (disconnected or silent too long)."""


class RunningJob(NamedTuple):
    """A coroutine a process runs for the current computation."""

    coro: Any
    func_name: str
    args: str  # short repr of the arguments
    start_time: float  # wall clock, as the server reported it
    rid: int = 0  # the run request that made it
    kind: str = "cpu"  # "cpu" and "result" hold the CPU slot; "async" does not


@dataclass
class NodeLoad:
    """The latest figures reported for a node (see `discoro.cluster.load`)."""

    figures: dict[str, Any]
    updated: float  # wall clock


@dataclass
class Proc:
    location: Any
    server: Any  # the server coroutine handle
    state: ProcState = ProcState.DISCOVERED
    jobs: dict[int, RunningJob] = field(default_factory=dict)
    pending: dict[int, str] = field(default_factory=dict)  # dispatched, not started: rid -> kind
    last_heard: float = 0.0
    last_started: float = 0.0  # when its newest job was reported started (tie-breaker)
    submitted: int = 0
    done: int = 0
    load_figures: dict[str, Any] = field(default_factory=dict)  # the latest ServerPulse.load
    updated: float | None = None  # wall clock of the latest pulse
    busy: bool = False  # refused the current computation while closing an earlier one
    announced: str | None = None  # the computation its ProcDiscovered was sent for

    @property
    def addr(self) -> str:
        return str(self.location.addr)

    @property
    def load(self) -> int:
        return len(self.jobs) + len(self.pending)

    @property
    def cpu_busy(self) -> bool:
        """Whether its CPU slot is taken (a CPU job runs or was dispatched)."""
        return any(job.kind in ("cpu", "result") for job in self.jobs.values()) or any(
            kind in ("cpu", "result") for kind in self.pending.values()
        )


@dataclass
class Computation:
    spec: p.ComputationSpec
    rid: int = 0  # the Submit's reply id


# -- actions -------------------------------------------------------------------------------


@dataclass
class Send:
    """Send ``message`` to the coroutine ``to`` (fire and forget)."""

    to: Any
    message: Any


# -- events that are not protocol messages -----------------------------------------------


@dataclass
class ProcFound:
    location: Any
    server: Any


@dataclass
class PeerLost:
    location: Any


@dataclass
class Tick:
    now: float


class SchedulerState(RunPlacement, CloseRules, NodeGates):
    def __init__(
        self,
        me: Any = None,
        zombie_period: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.me = me  # the scheduler's request coroutine (where servers and clients reply)
        self.clock = clock  # when processes were last heard from (compared with Tick.now)
        self.zombie_period = zombie_period
        self.procs: dict[Any, Proc] = {}
        self.queue: list[Computation] = []
        self.current: Computation | None = None
        self.actions: list[Send] = []
        self.node_load: dict[str, NodeLoad] = {}  # node address -> latest figures
        self.waiting: list[WaitingRun] = []  # runs of the current computation held for now
        self.idle_pulse_interval = 0.0  # asked of idle processes (0: their default)
        self.closing: PendingClose | None = None  # the current computation's close waits
        # (process location, job id) -> status coroutine, for the jobs still running when
        # their computation closed: their end (`JobDone.exit`) still goes there
        self.closed_jobs: dict[tuple[object, int], object] = {}

    # -- views ------------------------------------------------------------------------------

    def nodes(self, *states: ProcState) -> dict[str, list[Proc]]:
        grouped: dict[str, list[Proc]] = {}
        for proc in self.procs.values():
            if not states or proc.state in states:
                grouped.setdefault(proc.addr, []).append(proc)
        return grouped

    def ready(self) -> dict[str, list[Proc]]:
        return self.nodes(ProcState.INITIALIZED)

    def node_info_of(self, addr: str) -> DiscoroNodeInfo:
        """The `DiscoroNodeInfo` of the node at ``addr`` (`NodeGates.node_info_of`; named here
        because the close rules use it too)."""
        return NodeGates.node_info_of(self, addr)

    def lost_locations(self) -> list[Location]:
        """Where the processes lost (disconnected) and not found again are: the shell
        re-probes them, so a process cut off by a partition is used again once it heals."""
        return [
            proc.location for proc in self.procs.values() if proc.state is ProcState.DISCONNECTED
        ]

    # -- the one entry point --------------------------------------------------------------------

    def handle(self, event: Any) -> list[Send]:
        self.actions = []
        handler = getattr(self, "on_" + type(event).__name__, None)
        if handler is not None:
            handler(event)
        now = event.now if isinstance(event, Tick) else self.clock()
        if self.waiting:
            self._serve_waiting(now)
        if self.closing is not None:
            self._check_close(now)
        return self.actions

    def _send(self, to: Any, message: Any) -> None:
        if to is not None:
            self.actions.append(Send(to, message))

    def _status(self, status: int, info: Any) -> None:
        if self.current is not None:
            self._send(self.current.spec.status_coro, StatusMessage(status, info))

    def _uid_ok(self, uid: str) -> bool:
        return self.current is not None and self.current.spec.uid == uid

    # -- processes --------------------------------------------------------------------------

    def on_ProcFound(self, event: ProcFound) -> None:
        proc = self.procs.get(event.location)
        if proc is not None and proc.state not in (ProcState.DISCONNECTED, ProcState.CLOSED):
            return
        proc = self.procs[event.location] = Proc(event.location, event.server)
        if self.me is not None:
            # idle pulses: figures for status pages
            self._send(proc.server, p.Watch(self.me, self.idle_pulse_interval))
        if self.current is not None:
            self._admit(proc)  # through its node's gates (`discoro.cluster.node_gates`)

    def _setup(self, proc: Proc, node_setup_args: bytes | None = None) -> None:
        """Send ``proc`` the computation (``node_setup_args``: it runs node_setup too)."""
        assert self.current is not None
        if proc.announced != self.current.spec.uid:
            proc.announced = self.current.spec.uid
            self._status(Status.ProcDiscovered, proc.location)
        proc.state = ProcState.INITIALIZING
        proc.last_heard = self.clock()
        record = self.node_records.get(proc.addr)
        node_globals = record.node_globals if record is not None else None
        self._send(proc.server, p.Setup(self.current.spec, self.me, node_setup_args, node_globals))

    def on_SetupDone(self, event: p.SetupDone) -> None:
        proc = self.procs.get(event.location)
        if proc is None or proc.state is not ProcState.INITIALIZING:
            return
        if self._uid_ok(event.uid) and event.error.startswith(BUSY):
            # still closing an earlier computation (its client just ended): the next tick
            # tries again, without a status
            proc.state = ProcState.DISCOVERED
            proc.busy = True
            return
        if not self._uid_ok(event.uid) or event.error:
            proc.state = ProcState.CLOSED
            if event.error:
                self._status(Status.ProcIgnore, proc.location)
                assert self.current is not None
                spec = self.current.spec
                why = f"server {proc.location} is not used: its setup failed: {event.error}"
                self._send(spec.router, p.Output(proc.location, spec.uid, "log", why, 30))
                self._node_setup_lost(proc)
            return
        if not any(
            other.state is ProcState.INITIALIZED for other in self.ready().get(proc.addr, [])
        ):
            self._status(Status.NodeInitialized, self.node_info_of(proc.addr))
        proc.state = ProcState.INITIALIZED
        proc.last_heard = self.clock()
        self._status(Status.ProcInitialized, proc.location)
        assert self.current is not None
        if getattr(self.current.spec, "peers_communicate", False):
            others = [
                other.location
                for others in self.ready().values()
                for other in others
                if other is not proc
            ]
            if others:
                self._send(proc.server, p.Peers(self.current.spec.uid, others))

    def on_PeerLost(self, event: PeerLost) -> None:
        proc = self.procs.get(event.location)
        if proc is not None:
            self._lose(proc)
        current = self.current
        if current is not None and getattr(current.spec.router, "location", None) == event.location:
            self._close_current(client_gone=True)

    def _lose(self, proc: Proc) -> None:
        if proc.state is ProcState.DISCONNECTED:
            return
        was_active = proc.state in (ProcState.INITIALIZING, ProcState.INITIALIZED)
        proc.state = ProcState.DISCONNECTED
        pending, proc.pending = proc.pending, {}
        if self.current is None or not was_active:
            proc.jobs.clear()
            return
        status_coro = self.current.spec.status_coro
        router = self.current.spec.router
        reason = f"process {proc.location} was lost"
        for rid, kind in pending.items():
            if kind != "each":  # a fan-out's other processes answer; its wait ends it
                self._send(router, p.Reply(rid, None, reason))
        for info in proc.jobs.values():
            error = ProcessLost(reason)
            self._send(status_coro, MonitorException(info.coro, (ProcessLost, error)))
            if info.kind == "result":
                self._send(router, p.JobLost(info.rid, reason))
        proc.jobs.clear()
        self._status(Status.ProcDisconnected, proc.location)
        self._node_setup_lost(proc)
        if not any(
            other.state in (ProcState.INITIALIZING, ProcState.INITIALIZED)
            for other in self.procs.values()
            if other.addr == proc.addr
        ):
            self._status(Status.NodeDisconnected, self.node_info_of(proc.addr))

    def on_ServerPulse(self, event: p.ServerPulse) -> None:
        proc = self.procs.get(event.location)
        if proc is not None:
            proc.last_heard = self.clock()
            if event.load:
                proc.load_figures = dict(event.load)
                proc.updated = time.time()
                self.node_load[proc.addr] = NodeLoad(proc.load_figures, proc.updated)
                self._node_pulse(proc)

    def on_Tick(self, event: Tick) -> None:
        current = self.current
        if current is None:
            return
        limit = MISSED_PULSES * current.spec.pulse_interval
        for proc in list(self.procs.values()):
            active = proc.state in (ProcState.INITIALIZING, ProcState.INITIALIZED)
            if active and event.now - proc.last_heard > limit:
                self._lose(proc)
            elif proc.busy and proc.state is ProcState.DISCOVERED:
                proc.busy = False
                self._admit(proc)
        self._send(current.spec.router, p.Pulse(current.spec.uid))

    # -- computations -----------------------------------------------------------------------

    def on_Submit(self, event: p.Submit) -> None:
        spec = event.spec
        if any(c.spec.uid == spec.uid for c in self.queue) or self._uid_ok(spec.uid):
            return
        spec.zombie_period = self.zombie_period
        self.queue.append(Computation(spec))
        self._next()

    def _next(self) -> None:
        if self.current is not None or not self.queue:
            return
        self.current = self.queue.pop(0)
        self.reset_nodes()
        self._send(self.current.spec.router, p.Scheduled(self.current.spec.uid))
        for proc in list(self.procs.values()):
            if proc.state in (ProcState.DISCOVERED, ProcState.CLOSED):
                self._admit(proc)

    def on_ServerClosed(self, event: p.ServerClosed) -> None:
        proc = self.procs.get(event.location)
        if proc is None or not self._uid_ok(event.uid):
            return
        if proc.state in (ProcState.INITIALIZING, ProcState.INITIALIZED):
            proc.state = ProcState.CLOSED
            proc.jobs.clear()
            self._status(Status.ProcClosed, proc.location)
            node = [other for other in self.procs.values() if other.addr == proc.addr]
            if all(other.state is not ProcState.INITIALIZED for other in node):
                self._status(Status.NodeClosed, self.node_info_of(proc.addr))
        if not any(
            proc.state in (ProcState.INITIALIZING, ProcState.INITIALIZED)
            for proc in self.procs.values()
        ):
            self._close_current(client_gone=False, idle=True)

    # -- runs -------------------------------------------------------------------------------

    def on_JobStarted(self, event: p.JobStarted) -> None:
        if event.reply_to is not None:  # the client's answer rode along: pass it on
            self._send(event.reply_to, p.RunResult(event.rid, event.coro, None, event.fanout))
        proc = self.procs.get(event.location)
        if proc is None or not self._uid_ok(event.uid):
            return
        proc.pending.pop(event.rid, None)
        kind = getattr(event, "kind", "cpu")
        proc.jobs[event.coro._id] = RunningJob(
            event.coro, event.func_name, event.args_repr, event.start_time, event.rid, kind
        )
        proc.submitted += 1
        proc.last_heard = proc.last_started = self.clock()

    def on_JobFailed(self, event: p.JobFailed) -> None:
        proc = self.procs.get(event.location)
        if proc is not None:
            proc.pending.pop(event.rid, None)

    def on_JobDone(self, event: p.JobDone) -> None:
        proc = self.procs.get(event.location)
        job = proc.jobs.pop(event.coro_id, None) if proc is not None else None
        if job is not None:
            proc.done += 1  # type: ignore[union-attr]
        if event.exit is None:
            return
        # the job's end for the status coroutine: to the current one while the job runs
        # here, to that of a closed computation for a job dropped at the close, and never
        # for a job already reported lost
        status = self.closed_jobs.pop((event.location, event.coro_id), None)
        if job is not None and self.current is not None and self._uid_ok(event.uid):
            status = self.current.spec.status_coro
        if status is not None:
            observed, fields, payload = event.exit
            self._send(status, exit_notice(observed, fields, payload))

    def _remember_closed(self, location: object, coro_id: int, status: object) -> None:
        """The end of job ``coro_id`` at ``location``, dropped at a close, still goes to
        ``status`` when its `JobDone` comes (the latest `CLOSED_JOBS_KEPT` are kept)."""
        self.closed_jobs[(location, coro_id)] = status
        while len(self.closed_jobs) > CLOSED_JOBS_KEPT:
            del self.closed_jobs[next(iter(self.closed_jobs))]

    def on_ListRequest(self, event: p.ListRequest) -> None:
        if not self._uid_ok(event.uid):
            self._send(event.router, p.Reply(event.rid, []))
            return
        ready = self.ready()
        if event.what == "nodes":
            value: list[Any] = sorted(ready)
        else:
            value = [proc.location for procs in ready.values() for proc in procs]
        self._send(event.router, p.Reply(event.rid, value))
