"""The client's exactly-once ledger of its remote jobs (issue 10), without I/O.

Every job's end reaches the client's status coroutine at most once, and exactly once when
the job ends: either its server's own report (a `MonitorException` sent by the job's
process) or, when the scheduler writes that process's incarnation off, a report that it
was lost. The two race on different connections, so the client decides, here, in the order
things happen on its loop thread:

- A server's report of a job's end counts as soon as the network hands it over (`ended`,
  called from the network's exit hook, before the message is read by anyone).
- `written_off` fences the incarnation (the network drops its later frames from then on:
  `discoro.net.fencing`) and returns the jobs of that incarnation, or older, whose end
  has not counted: those, and only those, are reported lost, once.
- A job whose creation is heard of after its incarnation was fenced (`started`) is reported
  lost at once, unless its end has already counted.

So whichever of the server's report and the scheduler's write-off the client takes first
wins, and the other is dropped. A job is known by its location and id (ids are numbered
per process). Bounded: ended jobs are remembered only for the window in
which a late creation report can still arrive (the latest `KEEP_ENDED`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, Protocol, TypeVar

KEEP_ENDED = 4096


class JobHandle(Protocol):
    _id: int  # numbered per process


J = TypeVar("J", bound=JobHandle)


class JobLedger(Generic[J]):
    def __init__(self) -> None:
        # (location, id) -> (coro, incarnation)
        self.open: dict[tuple[object, int], tuple[J, int]] = {}
        self.ended_ids: OrderedDict[tuple[object, int], None] = OrderedDict()
        self.fenced: dict[object, int] = {}  # location -> highest incarnation written off
        self.why: dict[object, str] = {}  # location -> the latest reason it was written off
        self.reported: set[tuple[object, int]] = set()  # (location, id) reported lost

    def _is_fenced(self, location: object, incarnation: int) -> bool:
        return incarnation <= self.fenced.get(location, 0)

    def started(self, coro: J, location: object, incarnation: int) -> bool:
        """A job was created at ``location`` under ``incarnation``; True if it must be
        reported lost now (that incarnation was written off, and its end has not counted)."""
        ident = (location, coro._id)
        if ident in self.ended_ids or ident in self.reported:
            return False
        if self._is_fenced(location, incarnation):
            self.reported.add(ident)
            return True
        self.open[ident] = (coro, incarnation)
        return False

    def ended(self, location: object, coro_id: int) -> None:
        """A server's report of the end of job ``coro_id`` at ``location`` was taken."""
        ident = (location, coro_id)
        self.open.pop(ident, None)
        self.ended_ids[ident] = None
        while len(self.ended_ids) > KEEP_ENDED:
            self.ended_ids.popitem(last=False)

    def written_off(
        self, location: object, incarnation: int, reason: str, listed: list[J]
    ) -> list[J]:
        """Incarnation ``incarnation`` of the process at ``location`` (and every older one)
        was written off; ``listed``: the jobs the scheduler knew it ran. The jobs to report
        lost now (each once, ever)."""
        if incarnation > self.fenced.get(location, 0):
            self.fenced[location] = incarnation
        self.why[location] = reason
        lost: dict[tuple[object, int], J] = {}
        for ident, (coro, number) in list(self.open.items()):
            if ident[0] == location and number <= incarnation:
                lost[ident] = coro
                del self.open[ident]
        for coro in listed:
            ident = (location, coro._id)
            if ident not in self.ended_ids and ident not in self.reported:
                lost.setdefault(ident, coro)
                self.open.pop(ident, None)
        lost = {ident: coro for ident, coro in lost.items() if ident not in self.reported}
        self.reported.update(lost)
        return list(lost.values())
