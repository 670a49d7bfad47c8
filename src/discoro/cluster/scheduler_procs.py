"""What the scheduler knows of one server process, and the process lifecycle as a table.

A process moves between the states of `ProcState` only through `advance(proc, event)`, which
looks the pair up in `PROC_TRANSITIONS` (in the style of h11's ``_state.py``): a pair that is
not in the table is a bug in the caller and raises `LifecycleError`, loudly, instead of
leaving the process in a state nobody planned for. Events are plain enum members: nothing
is mutated but the process's ``state``.

    DISCOVERED --setup--> INITIALIZING --setup done--> INITIALIZED
        INITIALIZING --setup refused / closed--> CLOSED
        INITIALIZING --busy--> DISCOVERED (still closing an earlier computation: set up
            again at a later tick)
        INITIALIZED --closed--> CLOSED --setup--> INITIALIZING (the next computation)
        any but DISCONNECTED --written off--> DISCONNECTED (lost: silent, or its link died)
        DISCONNECTED --setup--> INITIALIZING (it rejoined, as a new incarnation)
        DISCONNECTED --rejoined--> CLOSED (it rejoined while no computation is current)

A job of the current computation has its own small lifecycle (`JOB_TRANSITIONS`): a run
*sent* to the process (``Proc.pending``) becomes *running* when the process reports it started
(``Proc.jobs``), and leaves exactly once, to one of the ends: ended (its server reported the
end), failed (it could not start: the client got the error), refused (written off before it
started: the client is answered), lost (written off while it ran: `WrittenOff`), dropped (its
computation closed). The `Proc` methods that move jobs check each move against the table.

Incarnations: each `Setup` the scheduler sends gives the process a new incarnation number
(``Proc.incarnation``); whatever the process reports carries the number it was set up with,
so a report from an incarnation that was written off is recognised and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from discoro.cluster.loop_watch import LoopWatch
from discoro.core.identity_enum import IdentityEnum


class ProcState(IdentityEnum):
    DISCOVERED = "discovered"
    INITIALIZING = "initializing"
    INITIALIZED = "initialized"
    CLOSED = "closed"
    DISCONNECTED = "disconnected"


class ProcEvent(IdentityEnum):
    SETUP = "setup sent"
    SETUP_DONE = "setup done"
    SETUP_REFUSED = "setup refused"
    BUSY = "busy"  # refused while it still closes an earlier computation
    CLOSED = "closed"
    WRITTEN_OFF = "written off"
    REJOINED = "rejoined"


_S, _E = ProcState, ProcEvent
_ACTIVE = (_S.INITIALIZING, _S.INITIALIZED)

PROC_TRANSITIONS: dict[tuple[ProcState, ProcEvent], ProcState] = {
    (_S.DISCOVERED, _E.SETUP): _S.INITIALIZING,
    (_S.CLOSED, _E.SETUP): _S.INITIALIZING,
    (_S.DISCONNECTED, _E.SETUP): _S.INITIALIZING,
    (_S.INITIALIZING, _E.SETUP_DONE): _S.INITIALIZED,
    (_S.INITIALIZING, _E.SETUP_REFUSED): _S.CLOSED,
    (_S.INITIALIZING, _E.BUSY): _S.DISCOVERED,
    (_S.INITIALIZING, _E.CLOSED): _S.CLOSED,
    (_S.INITIALIZED, _E.CLOSED): _S.CLOSED,
    (_S.DISCONNECTED, _E.REJOINED): _S.CLOSED,
    **{
        (state, _E.WRITTEN_OFF): _S.DISCONNECTED
        for state in (_S.DISCOVERED, _S.INITIALIZING, _S.INITIALIZED, _S.CLOSED)
    },
}


class JobPlace(IdentityEnum):
    SENT = "sent"
    RUNNING = "running"
    ENDED = "ended"
    FAILED = "failed"
    REFUSED = "refused"
    LOST = "lost"
    DROPPED = "dropped"


class JobEvent(IdentityEnum):
    STARTED = "started"
    FAILED = "failed"
    DONE = "done"  # JobDone, or ServerClosed (the server told the monitors of each)
    WRITTEN_OFF = "written off"
    CLOSED = "closed"  # its computation closed


_J, _JE = JobPlace, JobEvent
JOB_TRANSITIONS: dict[tuple[JobPlace, JobEvent], JobPlace] = {
    (_J.SENT, _JE.STARTED): _J.RUNNING,
    (_J.SENT, _JE.FAILED): _J.FAILED,
    (_J.SENT, _JE.WRITTEN_OFF): _J.REFUSED,
    (_J.SENT, _JE.CLOSED): _J.DROPPED,
    (_J.RUNNING, _JE.DONE): _J.ENDED,
    (_J.RUNNING, _JE.WRITTEN_OFF): _J.LOST,
    (_J.RUNNING, _JE.CLOSED): _J.DROPPED,
}


def job_moves(place: JobPlace, event: JobEvent) -> JobPlace:
    """Where a job at ``place`` goes on ``event`` (`LifecycleError` if it cannot)."""
    try:
        return JOB_TRANSITIONS[place, event]
    except KeyError:
        raise LifecycleError(f"job: no transition for {event.value!r} at {place.value!r}") from None


class ComputationState(IdentityEnum):
    QUEUED = "queued"
    CURRENT = "current"
    CLOSED = "closed"


class ComputationEvent(IdentityEnum):
    SCHEDULED = "scheduled"  # its turn came
    WITHDRAWN = "withdrawn"  # closed by its client while it waited
    CLOSED = "closed"  # closed by its client, its client lost, or every process idle


# a computation's lifecycle (as `PROC_TRANSITIONS` for processes)
COMPUTATION_TRANSITIONS: dict[tuple[ComputationState, ComputationEvent], ComputationState] = {
    (ComputationState.QUEUED, ComputationEvent.SCHEDULED): ComputationState.CURRENT,
    (ComputationState.QUEUED, ComputationEvent.WITHDRAWN): ComputationState.CLOSED,
    (ComputationState.CURRENT, ComputationEvent.CLOSED): ComputationState.CLOSED,
}


def computation_moves(state: ComputationState, event: ComputationEvent) -> ComputationState:
    """Where a computation in ``state`` goes on ``event`` (`LifecycleError` if it cannot)."""
    try:
        return COMPUTATION_TRANSITIONS[state, event]
    except KeyError:
        raise LifecycleError(
            f"computation: no transition for {event.value!r} in state {state.value!r}"
        ) from None


class LifecycleError(RuntimeError):
    """An event that the lifecycle table has no transition for (a bug in the caller)."""


class ProcessLost(Exception):
    """A remote coroutine's process went away (disconnected or silent too long)."""


#: The job kinds that hold their process's CPU slot (`discoro.cluster.slots`).
SLOT_KINDS = frozenset({"cpu", "result"})


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
    server: object  # the server coroutine handle
    state: ProcState = ProcState.DISCOVERED
    incarnation: int = 0  # set by every Setup; 0: never set up
    jobs: dict[int, RunningJob] = field(default_factory=dict)
    # runs sent, not started: request id -> kind ("cpu", "result", "async"; "each": fan-out)
    pending: dict[int, str] = field(default_factory=dict)
    last_heard: float = 0.0
    last_started: float = 0.0  # when its newest job was reported started (tie-breaker)
    fenced_told: float | None = None  # when it was last told it is fenced
    submitted: int = 0
    done: int = 0
    load_figures: dict[str, Any] = field(default_factory=dict)  # the latest ServerPulse.load
    updated: float | None = None  # wall clock of the latest pulse
    busy: bool = False  # refused the current computation while closing an earlier one
    announced: str | None = None  # the computation its ProcDiscovered was sent for
    loop: LoopWatch = field(default_factory=LoopWatch)  # its event loop runs, or is stuck

    @property
    def stuck(self) -> bool:
        """Whether its event loop is stuck in user code (`discoro.cluster.loop_watch`)."""
        return self.loop.stuck

    @property
    def addr(self) -> str:
        return str(self.location.addr)

    @property
    def load(self) -> int:
        return len(self.jobs) + len(self.pending)

    @property
    def cpu_busy(self) -> bool:
        """Whether its CPU slot is taken (a CPU job runs or was dispatched)."""
        for job in self.jobs.values():  # plain loops: asked several times per run placed
            if job.kind in SLOT_KINDS:
                return True
        return not SLOT_KINDS.isdisjoint(self.pending.values())

    # -- moving jobs (checked against JOB_TRANSITIONS) ---------------------------------------

    def run_sent(self, rid: int, kind: str) -> None:
        self.pending[rid] = kind

    def run_started(self, rid: int, coro_id: int, job: RunningJob) -> None:
        """A run sent here started as job ``coro_id`` (a start whose run this record did not
        send, e.g. one it forgot at a close, is taken as sent)."""
        self.pending.pop(rid, None)
        job_moves(JobPlace.SENT, JobEvent.STARTED)
        self.jobs[coro_id] = job

    def run_failed(self, rid: int) -> None:
        if self.pending.pop(rid, None) is not None:
            job_moves(JobPlace.SENT, JobEvent.FAILED)

    def job_done(self, coro_id: int) -> bool:
        """Job ``coro_id`` ended (its server said so); whether it was running here."""
        if self.jobs.pop(coro_id, None) is None:
            return False
        job_moves(JobPlace.RUNNING, JobEvent.DONE)
        return True

    def take_all(self, event: JobEvent) -> tuple[dict[int, RunningJob], dict[int, str]]:
        """Every job and run here leaves on ``event`` (written off, closed, or the server
        closed: ``DONE``); they are returned (jobs, runs): the runs stay on a ``DONE``."""
        jobs, self.jobs = self.jobs, {}
        if jobs:
            job_moves(JobPlace.RUNNING, event)
        if event is JobEvent.DONE:
            return jobs, {}
        runs, self.pending = self.pending, {}
        if runs:
            job_moves(JobPlace.SENT, event)
        return jobs, runs

    @property
    def active(self) -> bool:
        """Set up, or being set up, for the current computation."""
        return self.state in _ACTIVE


def advance(proc: Proc, event: ProcEvent) -> ProcState:
    """Move ``proc`` along its lifecycle (see the module docstring); its new state."""
    try:
        proc.state = PROC_TRANSITIONS[proc.state, event]
    except KeyError:
        raise LifecycleError(
            f"process {proc.location}: no transition for {event.value!r} "
            f"in state {proc.state.value!r}"
        ) from None
    return proc.state
