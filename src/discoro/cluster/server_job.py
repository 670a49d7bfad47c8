"""`ServerJob`: a job coroutine as a server process runs it.

Invariants: an uncaught exception is reported to ``on_error`` after the job's monitors were
told; a job ended because its computation's scheduler was lost (`ServerJob.end_lost`) is
reported to those of its monitors still reachable as failed with that `SchedulerLost`,
never as a normal finish.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discoro.cluster.output import Job
from discoro.cluster.server_state import SchedulerLost

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeAlias

    from discoro.core.coro import Coro

    # called as on_error(job, exc_info, monitors) when a job ends with an exception
    OnError: TypeAlias = Callable[[Coro, tuple[object, ...], list[Coro]], None]
    # called as on_done(job, value, exc_info) when a job ends, however it ends
    OnDone: TypeAlias = Callable[[Coro, object, tuple[object, ...] | None], None]


class ServerJob(Job):
    """A job that reports an uncaught exception to ``on_error(job, exc_info, monitors)``
    and then its end to ``on_done(job, value, exc_info)``, both after its monitors were told
    (``monitors``: who they were)."""

    __slots__ = ("_lost", "_on_done", "_on_error")

    def __init__(
        self,
        on_end: Callable[[], None] | None,
        on_error: OnError,
        on_done: OnDone | None,
        target: Callable[..., object],
        *args: object,
        **kwargs: object,
    ) -> None:
        self._on_error: OnError | None = on_error  # set before the coroutine can start
        self._on_done: OnDone | None = on_done
        self._lost: SchedulerLost | None = None
        super().__init__(on_end, target, *args, **kwargs)

    def end_lost(self, error: SchedulerLost, reachable: Callable[[Coro], bool]) -> None:
        """End the job because its scheduler was lost: its monitors that are ``reachable``
        now hear ``error``; the others are forgotten (cut off with the scheduler, they hear
        of the job from it, as lost, or not at all: never twice). A job that has ended
        already keeps its end. Callable from any thread (done on the loop thread)."""
        self._kernel.call(self._end_lost, error, reachable)

    def _end_lost(self, error: SchedulerLost, reachable: Callable[[Coro], bool]) -> None:
        if self._done:
            return
        self._lost = error
        if self._monitors:
            self._monitors = [monitor for monitor in self._monitors if reachable(monitor)]
        self._on_error = None  # the client hears of it through its monitors, not a JobError
        self.terminate()

    def _uncaught(self, exc_info: tuple[object, ...]) -> None:
        """Not logged here: the server reports the job's end and its exception to the
        client (``on_error``/``on_done``), whether or not the job has monitors."""
        if self._on_error is None and self._on_done is None:
            super()._uncaught(exc_info)

    def _end(self, value: object, exc_info: tuple[object, ...] | None) -> None:
        on_error, on_done = self._on_error, self._on_done
        if self._lost is not None and exc_info is None:
            exc_info = (SchedulerLost, self._lost, None)
        monitors = list(self._monitors or ())
        super()._end(value, exc_info)  # calls _uncaught while the callbacks are set
        self._on_error = self._on_done = None
        if exc_info is not None and on_error is not None:
            on_error(self, exc_info, monitors)
        if on_done is not None:
            on_done(self, value, exc_info)
