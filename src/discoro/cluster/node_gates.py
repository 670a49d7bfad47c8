"""The gates a node passes before its servers run a computation's jobs (later-versions 3.1,
3.2, 3.4, 3.5; D9): a mixin of `SchedulerState`, no I/O.

Per node (the processes of one address) and current computation there is one `NodeRecord`
that moves through these stages, each only when the computation asks for it:

    INFO      wait for the node's figures (its first pulse), when allocation rules or
              ``disable_nodes`` need them
    ALLOCATE  ask the client's router how many servers to use (`AllocateQuery`; the rules
              are the client's objects and run there); 0: the node is not used, no status;
              else (and without rules) ``NodeDiscovered`` with a `DiscoroNodeInfo`
    ENABLE    ``disable_nodes``: wait for `EnableNode` (its arguments go to ``node_setup``)
    NODE_SETUP one process of the node (the node's `location` one when it can) installs the
              computation and runs ``node_setup``; the others wait. Its `NodeSetupDone`
              carries the globals node_setup made, which every other server of the node
              installs with the computation: node_setup runs exactly once per node, and its
              globals are visible in every server (our servers outlive computations, so the
              original's fork-after-setup is replaced by shipping the globals). A failure
              ends the node's part: IGNORED, the client is told why (a log line).
    READY     every waiting process of the node (up to the allocated count) gets `Setup`.

Invariants: a process gets `Setup` only in READY (or as the node_setup process); at most
``limit`` processes of a node are ever set up for the computation; a record lives only while
its computation is current (`reset_nodes`). A node_setup process that is lost hands the job
to another process of the node.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from discoro.cluster import protocol as p
from discoro.cluster.nodeinfo import DiscoroNodeInfo, avail_info, node_info
from discoro.cluster.scheduler_procs import ProcEvent, ProcState, advance
from discoro.cluster.status import Status

if TYPE_CHECKING:
    from collections.abc import Callable

    from discoro.cluster.scheduler_procs import Proc
    from discoro.cluster.scheduler_state import Computation


ACTIVE = (ProcState.INITIALIZING, ProcState.INITIALIZED)
IDLE = (ProcState.DISCOVERED, ProcState.CLOSED)  # may be set up for the computation


class Stage(enum.Enum):
    INFO = "info"
    ALLOCATE = "allocate"
    ENABLE = "enable"
    NODE_SETUP = "node_setup"
    READY = "ready"
    IGNORED = "ignored"


@dataclass
class NodeRecord:
    addr: str
    location: object  # the first process found there: the node's `avail_info.location`
    stage: Stage = Stage.INFO
    announced: bool = False  # NodeDiscovered sent
    limit: int | None = None  # servers to use (None: all)
    setup_args: bytes | None = None  # from EnableNode
    setup_proc: object = None  # the location of the process running node_setup
    node_globals: bytes | None = None
    last_avail: float = float("-inf")  # monotonic time of the last bare avail report
    reasons: list[str] = field(default_factory=list)


class NodeGates:
    # provided by SchedulerState
    current: Computation | None
    procs: dict[object, Proc]
    me: object  # the scheduler's request coroutine
    clock: Callable[[], float]

    def _send(self, to: object, message: object) -> None:
        raise NotImplementedError

    def _status(self, status: int, info: object) -> None:
        raise NotImplementedError

    def _setup(self, proc: Proc, node_setup_args: bytes | None = None) -> None:
        raise NotImplementedError

    def _uid_ok(self, uid: str) -> bool:
        raise NotImplementedError

    @property
    def node_records(self) -> dict[str, NodeRecord]:
        records: dict[str, NodeRecord] | None = self.__dict__.get("_node_records")
        if records is None:
            records = self.__dict__["_node_records"] = {}
        return records

    def reset_nodes(self) -> None:
        self.node_records.clear()

    # -- views ------------------------------------------------------------------------------

    def _node_procs(self, addr: str) -> list[Proc]:
        return [proc for proc in self.procs.values() if proc.addr == addr]

    def _active(self, proc: Proc) -> bool:
        return proc.state in ACTIVE

    def node_info_of(self, addr: str) -> DiscoroNodeInfo:
        """The `DiscoroNodeInfo` of the node at ``addr`` from its latest figures."""
        record = self.node_records.get(addr)
        procs = self._node_procs(addr)
        location = record.location if record is not None else None
        if location is None and procs:
            location = procs[0].location
        figures: dict[str, object] = {}
        for proc in procs:
            if proc.load_figures:
                figures = proc.load_figures
        live = [proc for proc in procs if proc.state is not ProcState.DISCONNECTED]
        return node_info(addr, location, figures, len(live) or len(procs))

    # -- admission --------------------------------------------------------------------------

    def _admit(self, proc: Proc) -> None:
        """A process of the current computation's cluster is found (or the computation
        became current): pass its node's gates."""
        record = self.node_records.get(proc.addr)
        if record is None:
            record = self.node_records[proc.addr] = NodeRecord(proc.addr, proc.location)
        self._advance(record)

    def _needs_info(self) -> bool:
        assert self.current is not None
        spec = self.current.spec
        return bool(getattr(spec, "allocate", False) or getattr(spec, "disable_nodes", False))

    def _advance(self, record: NodeRecord) -> None:
        assert self.current is not None
        spec = self.current.spec
        if record.stage is Stage.INFO:
            if self._needs_info() and not any(
                proc.load_figures for proc in self._node_procs(record.addr)
            ):
                return  # its first pulse brings them (on_ServerPulse)
            if getattr(spec, "allocate", False):
                record.stage = Stage.ALLOCATE
                info = self.node_info_of(record.addr)
                self._send(spec.router, p.AllocateQuery(spec.uid, info, self.me))
                return
            self._announce(record)
            record.stage = Stage.ENABLE
        if record.stage is Stage.ALLOCATE:
            return  # waiting for the client's `Allocation`
        if record.stage is Stage.ENABLE:
            if getattr(spec, "disable_nodes", False) and record.setup_args is None:
                return  # waiting for `EnableNode`
            record.stage = Stage.NODE_SETUP if getattr(spec, "node_setup", None) else Stage.READY
        if record.stage is Stage.NODE_SETUP:
            self._start_node_setup(record)
            return
        if record.stage is Stage.READY:
            self._fill(record)

    def _announce(self, record: NodeRecord) -> None:
        """``NodeDiscovered``: the node is reserved for the computation (after allocation,
        so a program may enable it at once)."""
        if not record.announced:
            record.announced = True
            self._status(Status.NodeDiscovered, self.node_info_of(record.addr))

    def _start_node_setup(self, record: NodeRecord) -> None:
        if record.setup_proc is not None:
            proc = self.procs.get(record.setup_proc)
            if proc is not None and self._active(proc):
                return  # running there
        candidates = [proc for proc in self._node_procs(record.addr) if proc.state in IDLE]
        if not candidates:
            return  # a process found later runs it
        candidates.sort(key=lambda proc: proc.location != record.location)
        proc = candidates[0]
        record.setup_proc = proc.location
        self._setup(proc, node_setup_args=record.setup_args or b"")

    def _fill(self, record: NodeRecord) -> None:
        """Set up the node's waiting processes, up to its limit."""
        procs = self._node_procs(record.addr)
        used = sum(1 for proc in procs if self._active(proc))
        for proc in procs:
            if record.limit is not None and used >= record.limit:
                return
            if proc.state in IDLE:
                self._setup(proc)
                used += 1

    # -- events -----------------------------------------------------------------------------

    def on_Allocation(self, event: p.Allocation) -> None:
        record = self.node_records.get(event.addr)
        if record is None or not self._uid_ok(event.uid) or record.stage is not Stage.ALLOCATE:
            return
        if event.count <= 0:
            record.stage = Stage.IGNORED
            return
        record.limit = event.count
        self._announce(record)
        record.stage = Stage.ENABLE
        self._advance(record)

    def on_EnableNode(self, event: p.EnableNode) -> None:
        record = self.node_records.get(event.addr)
        if record is None or not self._uid_ok(event.uid) or record.stage is not Stage.ENABLE:
            return  # ignored unless the node waits for it
        record.setup_args = event.args
        self._advance(record)

    def on_EnableServer(self, event: p.EnableServer) -> None:
        proc = self.procs.get(event.location)
        if proc is None or not self._uid_ok(event.uid) or proc.state is not ProcState.INITIALIZING:
            return
        self._send(proc.server, event)

    def on_NodeSetupDone(self, event: p.NodeSetupDone) -> None:
        proc = self.procs.get(event.location)
        if proc is None or not self._uid_ok(event.uid):
            return
        record = self.node_records.get(proc.addr)
        if record is None or record.stage is not Stage.NODE_SETUP:
            return
        if event.error:
            record.stage = Stage.IGNORED
            if proc.state is ProcState.INITIALIZING:
                advance(proc, ProcEvent.SETUP_REFUSED)
            assert self.current is not None
            spec = self.current.spec
            why = f"node {record.addr} is not used: its node_setup failed: {event.error}"
            self._send(spec.router, p.Output(proc.location, spec.uid, "log", why, 30))
            return
        record.node_globals = event.node_globals
        record.stage = Stage.READY
        self._fill(record)

    def _node_pulse(self, proc: Proc) -> None:
        """``proc`` pulsed with figures: a node waiting for them goes on; a node in use
        reports its availability (a bare `DiscoroNodeAvailInfo`) once per pulse interval."""
        if self.current is None:
            return
        record = self.node_records.get(proc.addr)
        if record is None:
            return
        if record.stage is Stage.INFO:
            self._advance(record)
            return
        interval = self.current.spec.pulse_interval
        now = self.clock()
        if (
            record.stage is Stage.READY
            and self._active(proc)
            and proc.load_figures.get("cpu") is not None
            and now - record.last_avail >= 0.9 * interval
        ):
            record.last_avail = now
            report = avail_info(record.location, proc.load_figures)
            self._send(self.current.spec.status_coro, report)

    def _node_setup_lost(self, proc: Proc) -> None:
        """A process was lost (or closed) while it ran its node's node_setup: another one
        of the node runs it."""
        record = self.node_records.get(proc.addr)
        if (
            record is not None
            and record.stage is Stage.NODE_SETUP
            and record.setup_proc == proc.location
        ):
            record.setup_proc = None
            self._start_node_setup(record)
