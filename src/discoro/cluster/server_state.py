"""The bookkeeping and decisions of a server process, without I/O (DESIGN decision 9).

`ServerState` knows which computation is installed, which jobs run, whether the process is
quitting and when the computation has been idle long enough to close itself (zombie period);
`PulseTracker` decides when pulses have failed for too long. The shell in `server.py` feeds
them events with the current (monotonic) time and performs what they decide, so every rule
here is tested as a table, without a network or a clock.

Rules (reference 3.6, 3.7):
- One computation at a time: a second `Setup` is refused while one is installed (the same uid
  again is accepted: it is a repeated request, not a second computation).
- A quitting process accepts no `Setup` and no `Run`; it exits once no job runs.
- Idle close: with a zombie period, a computation without a running job for that long closes.
- Pulses: if none could be delivered for more than ``MISSED_PULSES`` x interval, give up.
- A computation whose scheduler is lost (its peer went offline, or pulses gave up) ends its
  jobs as failed with `SchedulerLost`, never as a normal finish: a client that is still alive
  must not take work that was cut short for a result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from discoro.cluster.constants import MISSED_PULSES, MaxPulseInterval, MinPulseInterval
from discoro.errors import DiscoroError

if TYPE_CHECKING:
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
    router: Coro | None = None  # the client's router (set by the shell)
    # the status coroutine is where the scheduler is: a job's end reaches it through the
    # scheduler (in `JobDone`), not as a MonitorException of its own (set by the shell)
    merge_exits: bool = False


class ServerState:
    def __init__(self) -> None:
        self.current: Installed | None = None
        self.quitting = False

    @property
    def ncoros(self) -> int:
        return 0 if self.current is None else len(self.current.jobs)

    def setup_refusal(self, uid: str) -> str | None:
        """Why a `Setup` of computation ``uid`` is refused (None: accept it)."""
        if self.quitting:
            return "the server process is quitting"
        if self.current is not None and self.current.uid != uid:
            return f"busy with computation {self.current.uid}"
        return None

    def install(
        self,
        uid: str,
        scheduler: Any,
        pulse_interval: float,
        zombie_period: float | None,
        status_coro: Any,
        now: float,
    ) -> Installed:
        self.current = Installed(
            uid,
            scheduler,
            clamp_pulse_interval(pulse_interval),
            zombie_period if zombie_period and zombie_period > 0 else None,
            status_coro,
            now,
        )
        return self.current

    def run_refusal(self, uid: str) -> str | None:
        """Why a `Run` for computation ``uid`` is refused (None: run it)."""
        if self.quitting:
            return "the server process is quitting"
        if self.current is None:
            return "no computation is installed"
        if self.current.uid != uid:
            return f"computation {uid} is not installed (current: {self.current.uid})"
        return None

    def job_started(self, job: Any) -> None:
        assert self.current is not None
        self.current.jobs[job._id] = job

    def job_ended(self, coro_id: int, now: float) -> Installed | None:
        """Forget a job; the computation it belonged to (None if it was not a current job)."""
        current = self.current
        if current is None or current.jobs.pop(coro_id, None) is None:
            return None
        if not current.jobs:
            current.idle_since = now
        return current

    def zombie_due(self, now: float) -> bool:
        current = self.current
        return (
            current is not None
            and current.zombie_period is not None
            and not current.jobs
            and now - current.idle_since >= current.zombie_period
        )

    def wait_time(self, now: float) -> float | None:
        """How long the shell may wait for a message before something is due."""
        current = self.current
        if current is None or current.zombie_period is None or current.jobs:
            return None
        return max(0.0, current.idle_since + current.zombie_period - now)

    def close(self, uid: str | None = None) -> Installed | None:
        """Uninstall the computation (only if it is ``uid``, when given); what was closed."""
        current = self.current
        if current is None or (uid is not None and current.uid != uid):
            return None
        self.current = None
        return current

    def may_exit(self) -> bool:
        return self.quitting and self.ncoros == 0


class PulseTracker:
    """Decides when pulses to the scheduler have failed for too long."""

    def __init__(self, interval: float, now: float) -> None:
        self.interval = interval
        self.last_delivered = now

    def delivered(self, now: float) -> None:
        self.last_delivered = now

    def given_up(self, now: float) -> bool:
        """After a failed pulse: has the scheduler been unreachable for too long?"""
        return now - self.last_delivered > MISSED_PULSES * self.interval
