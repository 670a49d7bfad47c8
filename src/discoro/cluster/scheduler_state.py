"""The scheduler's logic as a state machine: ``handle(event, now) -> actions``, no I/O.

State: the processes (grouped into nodes by address), the FIFO of submitted computations
and the current one. Events are what the shell received (protocol messages, peers found or
lost, clock ticks); actions are messages for the shell to send. The clock comes in with
every event (``now``, monotonic; ``Tick.now`` for ticks); an event this state has no
handler for is refused loudly (`UnknownEvent`); events are never mutated. Tested without a
network, and by a Hypothesis state machine (tests/test_scheduler_fencing_machine.py).

The parts: a process's record and lifecycle table (`discoro.cluster.scheduler_procs`),
what processes report and how a lost one is fenced (`discoro.cluster.scheduler_processes`),
whether a process's event loop runs or is stuck in user code (`discoro.cluster.loop_watch`),
where runs go (`discoro.cluster.placement`); computations are here.

Invariants:
- One computation is current at a time; it reserves every process. The next in the queue
  becomes current only when the current one closes (or its client is lost).
- A process is set up for the current computation once per incarnation; only INITIALIZED
  processes are eligible for runs, and single runs skip those whose loop is stuck while
  another can take them. Load = runs dispatched but not ended; a CPU job
  (``run``, ``run_at``, ``run_result*``) holds its process's one CPU slot until it ends
  (`discoro.cluster.slots`).
- Each process and each node is announced (``ServerDiscovered``; ``NodeDiscovered`` for the
  first of a node, with a `DiscoroNodeInfo`) before its setup, for every computation; a
  process is set up only once its node passed the gates (`discoro.cluster.node_gates`:
  allocation, ``disable_nodes``, node_setup), and a busy one (still closing an earlier
  computation) goes back to DISCOVERED and is admitted again at a later tick.
- An explicit close waits for the CPU jobs (`discoro.cluster.closing`); every process the
  computation used hears ``Close``, and the status coroutine gets the close-time statuses
  before the close is answered. Only a lost client detaches the status coroutine.
- A run that no process can take yet is held (`discoro.cluster.placement`) until one can
  (a fan-out: until the computation's timeout passes); every request gets exactly one
  answer (the runs, or a `Reply` with the reason), also when the computation closes while
  it waits, and also when the process it went to is lost before it started.
- A job is in at most one process's ``jobs``; it leaves it exactly once: done (reported by
  its server), closed with its computation, or written off with its process (reported
  to the client's router in one `WrittenOff`; a ``run_result*`` waiting for one hears
  `JobLost`). Nothing a written-off incarnation sends afterwards is accepted
  (`discoro.cluster.scheduler_processes`).
- Status bookkeeping (for `discoro.cluster.snapshot`): per process, ``submitted`` counts
  `JobStarted`, ``done`` counts `JobDone` of a job it knew, ``jobs`` holds the running ones
  (``submitted >= done + len(jobs)``: jobs dropped at a close or loss are neither); the
  latest `ServerPulse.load` figures and their wall-clock time are kept per process and per
  node (``node_load``; a node's figures are whichever of its processes reported last).
  Every process found is sent `Watch`, so it pulses (``uid`` None) while idle too; pulses
  are recorded whatever the process's state, and only processes active in the current
  computation are lost for silence.
- A job's end rides in `JobDone` (``exit``) when the status coroutine lives in this process:
  it is passed on to the status coroutine (`EndPassed`) at most once, never for a job of a
  written-off incarnation (that job is, or will be, reported lost by the client); the end
  of a job dropped at a close still reaches the status coroutine (`closed_jobs`), as it
  would have straight from the server.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from discoro.cluster import protocol as p
from discoro.cluster.closing import CloseRules, PendingClose
from discoro.cluster.node_gates import NodeGates
from discoro.cluster.placement import RunPlacement, WaitingRun
from discoro.cluster.scheduler_processes import EndPassed, ProcessEvents
from discoro.cluster.scheduler_procs import (
    ComputationEvent,
    ComputationState,
    LifecycleError,
    NodeLoad,
    Proc,
    ProcessLost,
    ProcEvent,
    ProcState,
    RunningJob,
    advance,
    computation_moves,
)
from discoro.cluster.status import Status, StatusMessage

if TYPE_CHECKING:
    from collections.abc import Callable

    from discoro.cluster.nodeinfo import DiscoroNodeInfo
    from discoro.net.location import Location

CLOSED_JOBS_KEPT = 10_000  # jobs of closed computations whose end is still forwarded

__all__ = [
    "Computation",
    "ComputationState",
    "EndPassed",
    "LifecycleError",
    "NodeLoad",
    "PeerLost",
    "Proc",
    "ProcFound",
    "ProcState",
    "ProcessLost",
    "RunningJob",
    "SchedulerState",
    "Send",
    "Tick",
    "UnknownEvent",
]


class UnknownEvent(TypeError):
    """An event the scheduler's state machine has no handler for."""


@dataclass
class Computation:
    spec: p.ComputationSpec
    rid: int = 0  # the Submit's reply id
    state: ComputationState = ComputationState.QUEUED

    def advance(self, event: ComputationEvent) -> None:
        self.state = computation_moves(self.state, event)


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


class SchedulerState(RunPlacement, CloseRules, NodeGates, ProcessEvents):
    def __init__(
        self,
        me: Any = None,
        zombie_period: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.me = me  # the scheduler's request coroutine (where servers and clients reply)
        self.clock = clock  # the shell's clock, for callers that give no ``now``
        self.now = clock()  # monotonic time of the event being handled
        self.wall = time.time()  # wall-clock time of the event being handled (status pages)
        self.incarnations = itertools.count(1)
        self.written_off: dict[int, str] = {}  # incarnation -> why it was written off
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

    def handle(self, event: Any, now: float | None = None) -> list[Send]:
        """The actions ``event`` calls for at monotonic time ``now`` (``Tick.now`` for a
        tick; else the state's clock when not given)."""
        handler = getattr(self, "on_" + type(event).__name__, None)
        if handler is None:
            raise UnknownEvent(f"the scheduler has no handler for {type(event).__name__}")
        self.actions = []
        self.now = event.now if isinstance(event, Tick) else self.clock() if now is None else now
        self.wall = time.time()
        handler(event)
        if self.waiting:
            self._serve_waiting(self.now)
        if self.closing is not None:
            self._check_close(self.now)
        return self.actions

    def _send(self, to: Any, message: Any) -> None:
        if to is not None:
            self.actions.append(Send(to, message))

    def _status(self, status: int, info: Any) -> None:
        if self.current is not None:
            self._send(self.current.spec.status_coro, StatusMessage(status, info))

    def _uid_ok(self, uid: str) -> bool:
        return self.current is not None and self.current.spec.uid == uid

    def _remember_closed(self, location: object, coro_id: int, status: object) -> None:
        """The end of job ``coro_id`` at ``location``, dropped at a close, still goes to
        ``status`` when its `JobDone` comes (the latest `CLOSED_JOBS_KEPT` are kept)."""
        self.closed_jobs[(location, coro_id)] = status
        while len(self.closed_jobs) > CLOSED_JOBS_KEPT:
            del self.closed_jobs[next(iter(self.closed_jobs))]

    def on_PeerLost(self, event: PeerLost) -> None:
        proc = self.procs.get(event.location)
        if proc is not None:
            self._write_off(proc, "its connection was lost")
        current = self.current
        if current is not None and getattr(current.spec.router, "location", None) == event.location:
            self._close_current(client_gone=True)

    def on_Tick(self, event: Tick) -> None:
        self._lose_silent()
        if self.current is None:
            return
        for proc in list(self.procs.values()):
            if proc.busy and proc.state is ProcState.DISCOVERED:
                proc.busy = False  # refused while closing an earlier computation: again
                self._admit(proc)
        self._send(self.current.spec.router, p.Pulse(self.current.spec.uid))

    def _setup(self, proc: Proc, node_setup_args: bytes | None = None) -> None:
        """Send ``proc`` the computation (``node_setup_args``: it runs node_setup too)."""
        assert self.current is not None
        if proc.announced != self.current.spec.uid:
            proc.announced = self.current.spec.uid
            self._status(Status.ProcDiscovered, proc.location)
        advance(proc, ProcEvent.SETUP)
        proc.incarnation = next(self.incarnations)
        proc.last_heard = self.now
        record = self.node_records.get(proc.addr)
        node_globals = record.node_globals if record is not None else None
        setup = p.Setup(
            self.current.spec,
            self.me,
            node_setup_args,
            node_globals,
            incarnation=proc.incarnation,
        )
        self._send(proc.server, setup)

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
        self.current.advance(ComputationEvent.SCHEDULED)
        self.reset_nodes()
        self._send(self.current.spec.router, p.Scheduled(self.current.spec.uid))
        for proc in list(self.procs.values()):
            if proc.state in (ProcState.DISCOVERED, ProcState.CLOSED):
                self._admit(proc)

    def _close_idle(self) -> None:
        self._close_current(client_gone=False, idle=True)

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
