"""Where a run goes, and what happens to a run that no process can take yet (no I/O).

The scheduler's state machine asks where a `RunRequest` goes. A single run (``any``,
``node``, ``proc``) follows the CPU-slot rules of `discoro.cluster.slots` (later-versions D3):
it goes now, is refused at once with the reason, or is *held*. A fan-out (``each_node``,
``each_proc``, ``node_procs``) is held when none of its targets is ready yet (right after
``schedule()`` the processes are still being set up, or no node has joined).

Rules:
- A held single run has no deadline: ``run``/``run_async`` without a target wait for the
  first initialized process, ``run_result*`` for a free slot; they end when they can go, when
  their target is lost (refused with the reason) or when the computation closes. One still
  held after the computation's ``timeout`` with no process ready at all is reported to the
  client once (`RunWaits`, with the reason), which logs it.
- A fan-out goes once at least one target is ready and no process it could also use is
  still initializing (`settled`), so ``run_procs`` right after ``schedule()`` reaches every
  process; at its deadline (the computation's ``timeout``) it goes to whatever is ready, and
  fails only if nothing is.
- Held runs are served in the order they arrived, each as soon as it can go (a held run
  never stalls a later one that can go); closing the computation refuses them all.
- A process whose event loop is stuck in user code (`discoro.cluster.loop_watch`) cannot
  start a run until its job yields, so single runs avoid it: they are placed as if it were
  not there. A run aimed at it (``proc``), or at a node whose every ready process is stuck,
  is held until one recovers; a ``cpu``/``async`` one still held after the computation's
  ``timeout`` is refused with the reason (the client's own wait would end soon after), a
  ``result`` one keeps waiting as for a busy slot. A run without a target when every ready
  process is stuck is held as when none is ready (reported once after the timeout, with the
  reason). A recovered process is used again by the next event: held runs go at once.
  ``each_node`` takes a node's running processes first; ``each_proc``/``node_procs`` mean
  every process, stuck or not.

`RunPlacement` is the part of the scheduler's state machine (`SchedulerState`) that handles
`RunRequest`: it places a run now, holds it, or refuses it with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from discoro.cluster import protocol as p
from discoro.cluster.slots import HOLD, least_loaded, place

if TYPE_CHECKING:
    from discoro.cluster.scheduler_state import Computation, Proc
    from discoro.cluster.slots import Wait

FANOUT_KINDS = ("each_node", "each_proc", "node_procs")

# the states a process can still leave for "initialized" (by its setup finishing)
_PENDING = ("discovered", "initializing")


@dataclass
class WaitingRun:
    """A run request held until a process can take it, or until ``deadline`` (monotonic)."""

    request: p.RunRequest
    deadline: float  # a fan-out fails then; a single run is only reported (`RunWaits`)
    waited: float  # the computation's timeout, for the failure reason
    reported: bool = False


def choose(
    ready: dict[str, list[Proc]], procs: dict[object, Proc], where: tuple[object, ...]
) -> list[Proc]:
    """The processes a fan-out at ``where`` goes to now (``ready``: the initialized ones, by
    node; ``procs``: all, by location)."""
    kind = where[0]
    if kind == "each_node":
        return [least_loaded(running(group) or group) for group in ready.values()]
    if kind == "each_proc":
        return [proc for group in ready.values() for proc in group]
    if kind == "node_procs":
        return list(ready.get(str(where[1]), []))
    return []


def running(group: list[Proc]) -> list[Proc]:
    """The processes of ``group`` whose event loop is not stuck."""
    return [proc for proc in group if not proc.stuck]


def _relevant(procs: dict[object, Proc], where: tuple[object, ...]) -> list[Proc]:
    """The processes (in any state) that ``where`` could ever use."""
    kind = where[0]
    if kind in ("node", "node_procs"):
        return [proc for proc in procs.values() if proc.addr == str(where[1])]
    if kind == "proc":
        proc = procs.get(where[1])
        return [proc] if proc is not None else []
    return list(procs.values())


def settled(procs: dict[object, Proc], where: tuple[object, ...]) -> bool:
    """Whether no process that ``where`` could use is still on its way to ready."""
    return not any(proc.state.value in _PENDING for proc in _relevant(procs, where))


def unready_reason(procs: dict[object, Proc], where: tuple[object, ...], waited: float) -> str:
    """Why no process took a run at ``where`` within ``waited`` seconds."""
    after = f"(waited {waited:g} s)"
    live = [proc for proc in procs.values() if proc.state.value != "disconnected"]
    if not live:
        return f"no node: the scheduler has found no server process {after}"
    kind = where[0]
    relevant = _relevant(procs, where)
    if kind in ("node", "node_procs") and not relevant:
        return f"no node {where[1]} among the scheduler's nodes {after}"
    if kind == "proc" and not relevant:
        return f"no process {where[1]} among the scheduler's processes {after}"
    counts: dict[str, int] = {}
    for proc in relevant:
        counts[proc.state.value] = counts.get(proc.state.value, 0) + 1
    detail = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return f"no process is ready ({detail}) {after}"


def stuck_targets(
    ready: dict[str, list[Proc]], procs: dict[object, Proc], where: tuple[object, ...]
) -> list[Proc]:
    """The stuck processes that alone could take a single run at ``where`` (none if some
    ready one runs, or if none is ready)."""
    kind = where[0]
    if kind == "proc":
        proc = procs.get(where[1])
        ready_ones = [proc] if proc is not None and proc.state.value == "initialized" else []
    elif kind == "node":
        ready_ones = ready.get(str(where[1]), [])
    else:
        ready_ones = [proc for group in ready.values() for proc in group]
    if not ready_ones or running(ready_ones):
        return []
    return ready_ones


def stuck_reason(stuck: list[Proc], now: float, waited: float, verdict: str) -> str:
    """Why a run waited ``waited`` seconds for the ``stuck`` processes; ``verdict``: what
    became of it ("did not start", "waits")."""
    after = f"the run {verdict} (waited {waited:g} s)"
    if len(stuck) == 1:
        (proc,) = stuck
        return (
            f"server process {proc.location} is busy in user code (its event loop has been "
            f"stuck for {proc.loop.stuck_for(now):.1f} s): {after}"
        )
    each = ", ".join(f"{proc.location} for {proc.loop.stuck_for(now):.1f} s" for proc in stuck)
    return (
        "every server process that could take it is busy in user code "
        f"(event loops stuck: {each}): {after}"
    )


class RunPlacement:
    """Run requests in `SchedulerState` (a mixin: the attributes are the state's)."""

    current: Computation | None
    queue: list[Computation]
    closing: object | None  # a close that waits for jobs (`discoro.cluster.closing`)
    procs: dict[object, Proc]
    waiting: list[WaitingRun]
    now: float  # monotonic time of the event being handled

    def ready(self) -> dict[str, list[Proc]]:
        raise NotImplementedError

    def _uid_ok(self, uid: str) -> bool:
        raise NotImplementedError

    def _send(self, to: object, message: object) -> None:
        raise NotImplementedError

    def on_RunRequest(self, event: p.RunRequest) -> None:
        if not self._uid_ok(event.uid):
            queued = any(c.spec.uid == event.uid for c in self.queue)
            why = "the computation is not scheduled yet" if queued else "the computation is closed"
            self._refuse(event, why)
            return
        assert self.current is not None
        if self.closing is not None:
            self._refuse(event, "the computation is closing")
            return
        if not self._dispatch(event, final=False):
            timeout = float(self.current.spec.timeout)
            self.waiting.append(WaitingRun(event, self.now + timeout, timeout))

    def _refuse(self, event: p.RunRequest, reason: str) -> None:
        empty: list[object] | None = [] if event.where[0] in FANOUT_KINDS else None
        self._send(event.router, p.Reply(event.rid, empty, reason))

    def _dispatch(self, event: p.RunRequest, final: bool, waited: float = 0.0) -> bool:
        """Send the run to its processes, if it can go now; whether it is answered (with
        ``final``, a run that cannot go is refused with the reason)."""
        assert self.current is not None
        fanout_kind = event.where[0] in FANOUT_KINDS
        kind = getattr(event, "kind", "cpu")
        if fanout_kind:
            targets = choose(self.ready(), self.procs, event.where)
        else:
            placed = self._place_single(event.where, kind)
            if placed is HOLD:
                return False
            if isinstance(placed, str):
                self._refuse(event, placed)
                return True
            targets = [placed]  # type: ignore[list-item]
        if not final and (not targets or (fanout_kind and not settled(self.procs, event.where))):
            return False
        if not targets:
            self._refuse(event, unready_reason(self.procs, event.where, waited))
            return True
        router = self.current.spec.router
        fanout = len(targets) if fanout_kind else 0
        for proc in targets:
            proc.run_sent(event.rid, "each" if fanout_kind else kind)
            run = p.Run(
                event.uid,
                event.rid,
                event.func,
                event.func_name,
                event.args,
                router,
                fanout,
                getattr(event, "sources", {}),
                kind,
            )
            self._send(proc.server, run)
        return True

    def _place_single(self, where: tuple[object, ...], kind: str) -> Proc | Wait | str:
        """`place`, among the ready processes whose loop runs; `HOLD` while every process
        that could take it is stuck (see the module docstring)."""
        ready = self.ready()
        if not any(proc.stuck for group in ready.values() for proc in group):
            return place(ready, self.procs, where, kind)  # the usual case: all usable
        if stuck_targets(ready, self.procs, where):
            return HOLD
        usable = {addr: running(group) for addr, group in ready.items()}
        return place(
            {addr: group for addr, group in usable.items() if group}, self.procs, where, kind
        )

    def _serve_waiting(self, now: float) -> None:
        waiting, self.waiting = self.waiting, []
        for held in waiting:
            request = held.request
            due = now >= held.deadline
            fanout = request.where[0] in FANOUT_KINDS
            if self.current is None:
                self._refuse(request, "the computation is closed")
            elif not self._dispatch(request, due and fanout, held.waited):
                if due and not fanout:
                    self._held_too_long(held, now)
                else:
                    self.waiting.append(held)

    def _held_too_long(self, held: WaitingRun, now: float) -> None:
        """A single run still held past its deadline: one at a stuck target is refused; one
        that waits for a process to be ready or to run again is reported once, and waits."""
        request = held.request
        kind = getattr(request, "kind", "cpu")
        stuck = stuck_targets(self.ready(), self.procs, request.where)
        if stuck and request.where[0] in ("node", "proc") and kind != "result":
            self._refuse(request, stuck_reason(stuck, now, held.waited, "did not start"))
            return
        self.waiting.append(held)
        if held.reported:
            return
        if stuck:
            reason = stuck_reason(stuck, now, held.waited, "waits")
        elif not self.ready():
            reason = unready_reason(self.procs, request.where, held.waited)
        else:
            return  # it waits for a free slot: nothing to report
        held.reported = True  # it goes on waiting: say why, once
        self._send(request.router, p.RunWaits(request.rid, request.func_name, reason))
