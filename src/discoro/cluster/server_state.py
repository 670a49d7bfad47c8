"""The bookkeeping and decisions of a server process, without I/O (DESIGN decision 9).

`ServerState` knows which computation is installed, which jobs run, whether the process is
quitting and when the computation has been idle long enough to close itself (zombie period);
it changes only through ``handle(event) -> actions`` (the lifecycle table and its rules:
`discoro.cluster.server_lifecycle`);
`PulseTracker` decides when pulses have failed for too long. The shell in `server.py` feeds
them events with the current (monotonic) time and performs what they decide, so every rule
here is tested as a table, without a network or a clock.

Rules (reference 3.6, 3.7):
- One computation at a time: a second `Setup` is refused while one is installed (the same uid
  again is accepted: it is a repeated request, not a second computation).
- A quitting process accepts no `Setup` and no `Run`; it exits once no job runs.
- Idle close: with a zombie period, a computation without a running job for that long closes.
  The node's rules (`NodeRules`, from the ``discoronode`` options) apply on top of the
  computation's: the shorter zombie period wins; a pulse interval below the node's minimum
  is refused, one above its maximum is lowered to it; a node that serves only N computations
  refuses an (N+1)th; a retired process takes no computation at all.
- Draining (the node's ``close`` command): no new job; the computation closes as soon as no
  job runs, then the process takes computations again.
- Pulses: if none could be delivered for more than ``MISSED_PULSES`` x interval, give up;
  time this process's own loop was blocked does not count (`PulseTracker`).
- Incarnations: a computation is installed under the scheduler's incarnation number; a
  `Fenced` for it (or a `Setup` of the same computation with a higher number) ends its jobs
  unreported and closes it, and the process answers ``ServerClosed(fenced=True)``.
- A computation whose scheduler is lost (its peer went offline, or pulses gave up) ends its
  jobs as failed with `SchedulerLost`, never as a normal finish: a client that is still alive
  must not take work that was cut short for a result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from discoro.cluster.constants import MISSED_PULSES, MaxPulseInterval, MinPulseInterval, MsgTimeout
from discoro.cluster.server_lifecycle import BUSY, LifecycleRules, Phase
from discoro.errors import DiscoroError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from discoro.core.coro import Coro


class SchedulerLost(DiscoroError):
    """Why a remote coroutine ended when the scheduler of its computation was lost (its
    process died or could not be reached for 5 pulse intervals): its server ended it. Its
    monitors (the computation's ``status_coro``, and coroutines that called ``monitor()``)
    get ``MonitorException(coro, (SchedulerLost, SchedulerLost(reason)))`` instead of a
    normal finish; the reason names the scheduler. Exported as ``discoro.SchedulerLost``."""


def clamp_pulse_interval(value: float) -> float:
    return float(min(max(value or MinPulseInterval, MinPulseInterval), MaxPulseInterval))


@dataclass
class NodeRules:
    """What the node's operator decided for every server process of the node."""

    serve: int = -1  # computations this process may still take (-1: no limit)
    zombie_period: float | None = None  # idle close, whatever the computation says
    min_pulse_interval: float = MinPulseInterval
    max_pulse_interval: float = MaxPulseInterval
    msg_timeout: float = MsgTimeout  # bound on waiting for a pulse to be delivered

    @classmethod
    def from_dict(cls, values: Mapping[str, float]) -> NodeRules:
        """The rules a node passed as JSON (ValueError on a name that is no rule)."""
        rules = cls()
        for key, value in values.items():
            if key not in cls.__dataclass_fields__:
                raise ValueError(f"unknown node rule {key!r}")
            setattr(rules, key, int(value) if key == "serve" else float(value))
        return rules

    def zombie(self, computation: float | None) -> float | None:
        """The idle period that applies: the shorter of the computation's and the node's."""
        periods = [z for z in (computation, self.zombie_period) if z and z > 0]
        return min(periods) if periods else None


@dataclass
class Installed:
    """The computation a server process runs now."""

    uid: str
    scheduler: Any  # where reports go (the scheduler's request coroutine)
    pulse_interval: float
    zombie_period: float | None
    status_coro: Any
    idle_since: float
    jobs: dict[int, Any] = field(default_factory=dict)  # coroutine id -> job Coro
    pulser: Any = None  # the coroutine sending pulses (set by the shell)
    incarnation: int = 0  # the scheduler's number for this process's work on it
    router: Coro | None = None  # the client's router (set by the shell)
    # the status coroutine is where the scheduler is: a job's end reaches it through the
    # scheduler (in `JobDone`), not as a MonitorException of its own (set by the shell)
    merge_exits: bool = False
    preparer: Coro | None = None  # the coroutine running its setup hooks, until it is initialized


class ServerState(LifecycleRules):
    """What the server process knows; it changes only through ``handle(event)`` (the rules
    and their table: `discoro.cluster.server_lifecycle`; the node's rules are asked through
    the queries below)."""

    def __init__(self, rules: NodeRules | None = None) -> None:
        self.phase = Phase.IDLE
        self.current: Installed | None = None
        self.rules = rules or NodeRules()
        self.served: set[str] = set()  # computations installed so far
        self.retired: str | None = None  # why it takes no computation (e.g. served all)
        self.draining = False  # the node's ``close``: no new job, close when none runs

    @property
    def quitting(self) -> bool:
        return self.phase is Phase.QUITTING

    @property
    def ncoros(self) -> int:
        return 0 if self.current is None else len(self.current.jobs)

    def setup_refusal(self, uid: str, pulse_interval: float | None = None) -> str | None:
        """Why a `Setup` of computation ``uid`` is refused (None: accept it)."""
        if self.quitting:
            return "the server process is quitting"
        if self.current is not None and self.current.uid != uid:
            return f"{BUSY} {self.current.uid}"
        if self.current is not None:
            return None  # a repeated Setup of the installed computation
        if self.retired is not None:
            return self.retired
        serve = self.rules.serve
        if serve >= 0 and uid not in self.served and len(self.served) >= serve:
            return f"the node serves only {serve} computation(s) (--serve)"
        interval = clamp_pulse_interval(pulse_interval or 0)
        if interval < self.rules.min_pulse_interval:
            return (
                f"pulse_interval {interval:g} is below the node's --min_pulse_interval "
                f"{self.rules.min_pulse_interval:g}"
            )
        return None

    def record(
        self,
        uid: str,
        scheduler: Any,
        pulse_interval: float,
        zombie_period: float | None,
        status_coro: Any,
        now: float,
        incarnation: int = 0,
    ) -> Installed:
        """The record of a computation about to be installed (`SetupSucceeded` installs it),
        under the node's pulse and idle rules."""
        return Installed(
            uid,
            scheduler,
            min(clamp_pulse_interval(pulse_interval), self.rules.max_pulse_interval),
            self.rules.zombie(zombie_period),
            status_coro,
            now,
            incarnation=incarnation,
        )

    def drain(self) -> bool:
        """The node's ``close``: take no new job and close the computation once none runs;
        whether a computation is installed (else there is nothing to close)."""
        self.draining = self.current is not None
        return self.draining

    def run_refusal(self, uid: str) -> str | None:
        """Why a `Run` for computation ``uid`` is refused (None: run it)."""
        if self.quitting:
            return "the server process is quitting"
        if self.current is None:
            return "no computation is installed"
        if self.current.uid != uid:
            return f"computation {uid} is not installed (current: {self.current.uid})"
        if self.draining:
            return "the node's operator is closing this computation here (no new jobs)"
        return None

    def zombie_due(self, now: float) -> bool:
        """Whether the computation should close by itself now (idle too long, or drained)."""
        current = self.current
        if current is None or current.jobs:
            return False
        if self.draining:
            return True
        zombie = current.zombie_period
        return zombie is not None and now - current.idle_since >= zombie

    def wait_time(self, now: float) -> float | None:
        """How long the shell may wait for a message before something is due."""
        current = self.current
        if current is None or current.jobs:
            return None
        if self.draining:
            return 0.0
        if current.zombie_period is None:
            return None
        return max(0.0, current.idle_since + current.zombie_period - now)

    def may_exit(self) -> bool:
        return self.quitting and self.ncoros == 0


class PulseTracker:
    """Decides when pulses to the scheduler have failed for too long.

    A pulse is tried every interval and waits up to an interval for delivery, so its steps
    come at most two intervals apart; the shell says when a step came much later than that
    (``stalled``: this process's own loop was blocked, `discoro.core.stalls`), which says
    nothing of the scheduler: it then gets a fresh window."""

    def __init__(self, interval: float, now: float) -> None:
        self.interval = interval
        self.last_delivered = now

    def delivered(self, now: float) -> None:
        self.last_delivered = now

    def given_up(self, now: float, stalled: bool = False) -> bool:
        """After a failed pulse: has the scheduler been unreachable for too long?"""
        if stalled:
            self.last_delivered = max(self.last_delivered, now)
        return now - self.last_delivered > MISSED_PULSES * self.interval
