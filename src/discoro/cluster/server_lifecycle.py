"""The server process's lifecycle as a transition table: ``handle(event) -> actions``.

In the style of h11's ``_state.py``: `TRANSITIONS` maps (phase, event type) to the rule that
decides; a pair that is not in it is refused loudly (`UnknownServerEvent`), so an event in a
phase nobody planned for is a bug seen at once, not a silent no-op. Every event carries the
time (``now``, monotonic); no rule reads a clock. Events are frozen: rules never change them.
The shell (`discoro.cluster.server`) turns each protocol message into an event, calls
`ServerState.handle`, and performs the actions it gets back, in order.

    IDLE --SetupAsked--> (InstallComputation) --Installed--> INSTALLED
    INSTALLED --CloseAsked / FencedAsked / SchedulerGone / Tick (zombie)--> IDLE
        (CloseComputation: how the jobs end and what the scheduler is told)
    INSTALLED --SetupAsked of the same computation, higher incarnation-->
        CloseComputation(fenced), then InstallComputation (it was written off unawares)
    INSTALLED --SetupFailed (its node_setup / server_setup failed)--> IDLE
    INSTALLED --Tick, drained (the node's ``close``) and no job runs--> IDLE

The node's rules (`NodeRules`: serve count, retirement, minimum pulse interval, draining)
are the state's queries (``setup_refusal``, ``run_refusal``, ``zombie_due``); the rules here
ask them, so a `Setup` or `Run` the node refuses is answered with the node's reason. With
setup hooks (``node_setup``/``server_setup``) the computation is installed first and the
shell answers the `Setup` once they ran (``SetupSucceeded(answer=False)``).
    any --QuitAsked--> QUITTING (no Setup, no Run; exits once no job runs)
    any --AbortAsked--> QUITTING, closing what is installed at once

A QUITTING process may still have a computation installed (its jobs finish); ``current``
tells. Jobs are recorded with `JobStarted` and forgotten with `JobEnded` in every phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from discoro.core.identity_enum import IdentityEnum

if TYPE_CHECKING:
    from collections.abc import Callable

    from discoro.cluster.server_state import Installed, NodeRules


BUSY = "busy with computation"  # how a refusal because of another computation starts


class Phase(IdentityEnum):
    IDLE = "idle"
    INSTALLED = "installed"
    QUITTING = "quitting"


class UnknownServerEvent(RuntimeError):
    """An event the server's lifecycle table has no rule for in the current phase."""


# -- events (what the shell saw) -----------------------------------------------------------


@dataclass(frozen=True)
class SetupAsked:
    uid: str
    incarnation: int
    now: float
    pulse_interval: float | None = None  # the computation's (the node may refuse it)


@dataclass(frozen=True)
class SetupSucceeded:
    """The shell installed the computation of a `SetupAsked` (``record``: what it made)."""

    record: Installed
    now: float
    answer: bool = True  # False: setup hooks run first; the shell answers after them


@dataclass(frozen=True)
class SetupFailed:
    """The installed computation's setup hooks failed here: uninstall it (the shell has
    told the scheduler why)."""

    uid: str
    reason: str
    now: float


@dataclass(frozen=True)
class RunAsked:
    uid: str
    now: float


@dataclass(frozen=True)
class JobStarted:
    job: object  # the job coroutine (its ``_id`` keys it)
    now: float


@dataclass(frozen=True)
class JobEnded:
    coro_id: int
    now: float


@dataclass(frozen=True)
class CloseAsked:
    uid: str
    now: float


@dataclass(frozen=True)
class FencedAsked:
    incarnation: int
    reason: str
    now: float


@dataclass(frozen=True)
class SchedulerGone:
    """The installed computation's scheduler went offline or stopped taking pulses."""

    uid: str | None  # None: whichever is installed
    reason: str
    now: float


@dataclass(frozen=True)
class Tick:
    now: float


@dataclass(frozen=True)
class QuitAsked:
    now: float


@dataclass(frozen=True)
class AbortAsked:
    now: float


# -- actions (what the shell does) -----------------------------------------------------------


@dataclass(frozen=True)
class AnswerSetup:
    """Answer the `Setup` with `SetupDone` (``error``: refused, with the reason)."""

    incarnation: int
    error: str = ""


@dataclass(frozen=True)
class InstallComputation:
    """Install the asked computation (then report `SetupSucceeded`, or answer the error)."""

    incarnation: int


@dataclass(frozen=True)
class RefuseRun:
    reason: str


@dataclass(frozen=True)
class StartJob:
    pass


@dataclass(frozen=True)
class ReportJobDone:
    record: Installed
    coro_id: int


@dataclass(frozen=True)
class CloseComputation:
    """Tear ``record`` down. ``how``: ``asked``/``abort`` (jobs terminated, `ServerClosed`),
    ``idle`` (`ServerClosed(idle=True)`), ``lost`` (jobs end with `SchedulerLost` to the
    monitors still reachable, nothing to the scheduler), ``fenced`` (jobs end unreported,
    `ServerClosed(fenced=True)`)."""

    record: Installed
    how: str
    reason: str = ""


Action = AnswerSetup | InstallComputation | RefuseRun | StartJob | ReportJobDone | CloseComputation


class LifecycleRules:
    """The rules (a mixin of `ServerState`: its attributes are the state's)."""

    phase: Phase
    current: Installed | None
    rules: NodeRules
    served: set[str]  # computations installed so far
    draining: bool

    def setup_refusal(self, uid: str, pulse_interval: float | None = None) -> str | None:
        raise NotImplementedError

    def run_refusal(self, uid: str) -> str | None:
        raise NotImplementedError

    def zombie_due(self, now: float) -> bool:
        raise NotImplementedError

    def handle(self, event: object) -> list[Action]:
        name = TRANSITIONS.get((self.phase, type(event)))
        if name is None:
            raise UnknownServerEvent(
                f"server in phase {self.phase.value!r}: no rule for {type(event).__name__}"
            )
        rule: Callable[[object], list[Action]] = getattr(self, name)
        return rule(event)

    # -- setup ------------------------------------------------------------------------------

    def _setup_idle(self, event: SetupAsked) -> list[Action]:
        refusal = self.setup_refusal(event.uid, event.pulse_interval)
        if refusal is not None:
            return [AnswerSetup(event.incarnation, refusal)]
        return [InstallComputation(event.incarnation)]

    def _setup_installed(self, event: SetupAsked) -> list[Action]:
        current = self.current
        assert current is not None
        if current.uid != event.uid:
            return [AnswerSetup(event.incarnation, f"{BUSY} {current.uid}")]
        if event.incarnation > current.incarnation:  # written off, and it never heard
            closed = self._uninstall()
            close = CloseComputation(closed, "fenced", "set up again as a new incarnation")
            refusal = self.setup_refusal(event.uid, event.pulse_interval)
            if refusal is not None:  # e.g. the node retired meanwhile
                return [close, AnswerSetup(event.incarnation, refusal)]
            return [close, InstallComputation(event.incarnation)]
        return [AnswerSetup(current.incarnation)]  # a repeated Setup

    def _setup_quitting(self, event: SetupAsked) -> list[Action]:
        return [AnswerSetup(event.incarnation, "the server process is quitting")]

    def _installed(self, event: SetupSucceeded) -> list[Action]:
        self.current = event.record
        self.phase = Phase.INSTALLED
        self.served.add(event.record.uid)
        return [AnswerSetup(event.record.incarnation)] if event.answer else []

    def _setup_failed(self, event: SetupFailed) -> list[Action]:
        if self.current is None or self.current.uid != event.uid:
            return []
        return [CloseComputation(self._uninstall(), "lost", event.reason)]

    # -- runs -------------------------------------------------------------------------------

    def _run_idle(self, event: RunAsked) -> list[Action]:
        return [RefuseRun("no computation is installed")]

    def _run_installed(self, event: RunAsked) -> list[Action]:
        refusal = self.run_refusal(event.uid)  # another computation, or draining
        return [RefuseRun(refusal)] if refusal is not None else [StartJob()]

    def _run_quitting(self, event: RunAsked) -> list[Action]:
        return [RefuseRun("the server process is quitting")]

    def _job_started(self, event: JobStarted) -> list[Action]:
        current = self.current
        assert current is not None
        current.jobs[event.job._id] = event.job  # type: ignore[attr-defined]
        return []

    def _job_ended(self, event: JobEnded) -> list[Action]:
        current = self.current
        if current is None or current.jobs.pop(event.coro_id, None) is None:
            return []
        if not current.jobs:
            current.idle_since = event.now
        return [ReportJobDone(current, event.coro_id)]

    # -- closing ----------------------------------------------------------------------------

    def _uninstall(self) -> Installed:
        current = self.current
        assert current is not None
        self.current = None
        self.draining = False  # drained: take computations again
        if self.phase is Phase.INSTALLED:
            self.phase = Phase.IDLE
        return current

    def _close_asked(self, event: CloseAsked) -> list[Action]:
        if self.current is None or self.current.uid != event.uid:
            return []
        return [CloseComputation(self._uninstall(), "asked")]

    def _fenced(self, event: FencedAsked) -> list[Action]:
        if self.current is None or self.current.incarnation != event.incarnation:
            return []
        return [CloseComputation(self._uninstall(), "fenced", event.reason)]

    def _scheduler_gone(self, event: SchedulerGone) -> list[Action]:
        current = self.current
        if current is None or (event.uid is not None and current.uid != event.uid):
            return []
        return [CloseComputation(self._uninstall(), "lost", event.reason)]

    def _tick(self, event: Tick) -> list[Action]:
        if not self.zombie_due(event.now):  # idle too long, or drained
            return []
        return [CloseComputation(self._uninstall(), "idle")]

    def _nothing(self, event: object) -> list[Action]:
        return []

    # -- quitting ---------------------------------------------------------------------------

    def _quit(self, event: QuitAsked) -> list[Action]:
        self.phase = Phase.QUITTING
        return []

    def _abort(self, event: AbortAsked) -> list[Action]:
        self.phase = Phase.QUITTING
        if self.current is None:
            return []
        return [CloseComputation(self._uninstall(), "abort")]


_I, _N, _Q = Phase.IDLE, Phase.INSTALLED, Phase.QUITTING
# (phase, event type) -> the name of the rule that decides
TRANSITIONS: dict[tuple[Phase, type], str] = {
    (_I, SetupAsked): "_setup_idle",
    (_N, SetupAsked): "_setup_installed",
    (_Q, SetupAsked): "_setup_quitting",
    (_I, SetupSucceeded): "_installed",
    **{(phase, SetupFailed): "_setup_failed" for phase in Phase},
    (_I, RunAsked): "_run_idle",
    (_N, RunAsked): "_run_installed",
    (_Q, RunAsked): "_run_quitting",
    (_N, JobStarted): "_job_started",
    **{(phase, JobEnded): "_job_ended" for phase in Phase},
    **{(phase, CloseAsked): "_close_asked" for phase in Phase},
    **{(phase, FencedAsked): "_fenced" for phase in Phase},
    **{(phase, SchedulerGone): "_scheduler_gone" for phase in Phase},
    **{(phase, Tick): "_tick" for phase in Phase},
    **{(phase, QuitAsked): "_quit" for phase in Phase},
    **{(phase, AbortAsked): "_abort" for phase in Phase},
}
