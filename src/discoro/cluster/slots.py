"""Where a single run goes: CPU slots and the placement rules of later-versions D3 (no I/O).

Every server process has one *CPU slot*. A CPU job (``run``, ``run_at``, ``run_result*``)
holds the slot of its process from dispatch until it ends; async jobs (``run_async*``, and
the seed's fan-outs ``run_each``/``run_nodes``/``run_procs``) never hold one. A process's
*load* is all its jobs (running and dispatched); a node's *CPU load* is its busy slots per
process.

`place` answers for one request of kind ``cpu``, ``async`` or ``result`` at ``where``
(``("any",)``, ``("node", addr)``, ``("proc", Location)``) with one of: the process to run
it on, `HOLD` (hold the request and ask again when something changes), or a str (refuse at
once, with that reason):

- ``cpu`` anywhere: a free slot if there is one (the least CPU-loaded node, its free process
  with fewest jobs), else the least loaded process of the least loaded node (3.5); at a
  node: a free slot there, else its least loaded process; at a process: that process.
- ``async`` anywhere: the least CPU-loaded node with a free slot (else the least loaded
  node), its process with fewest jobs (a busy slot is fine); at a node: its process with
  fewest jobs; at a process: that process.
- ``result`` anywhere: a free slot, else `HOLD`; at a node: a free slot there, else `HOLD`;
  at a process: that process once its slot is free, `HOLD` until then.

Without ready processes, ``any`` is held (there is no deadline: the request ends when a process
is ready or the computation closes); a node or process that is unknown or not initialized is
refused at once, also while a ``result`` request waits for it (so a lost process ends the
wait).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from discoro.cluster.scheduler_state import Proc


class Wait:
    """The type of `HOLD`: hold the request and ask again when something changes."""


HOLD = Wait()


def least_loaded(procs: list[Proc]) -> Proc:
    # among equally loaded processes, the one whose newest job started longest ago: a busy
    # CPU-bound job there is the likeliest to finish first (and idle processes take turns)
    return min(procs, key=lambda proc: (proc.load, proc.last_started))


def _node_load(group: list[Proc]) -> float:
    return sum(proc.load for proc in group) / len(group)


def _free(group: list[Proc]) -> list[Proc]:
    return [proc for proc in group if not proc.cpu_busy]


def place(
    ready: dict[str, list[Proc]], procs: dict[object, Proc], where: tuple[object, ...], kind: str
) -> Proc | Wait | str:
    """The process a single run goes to now, `HOLD`, or the reason to refuse it."""
    target = where[0]
    if target == "any":
        if not ready:
            return HOLD
        # the least CPU-loaded node with a free slot (the first of equals), in one pass:
        # each process's slot is looked at once (a run's placement is on its hot path)
        best: tuple[float, list[Proc], list[Proc]] | None = None
        for group in ready.values():
            free = _free(group)
            if free:
                busy = (len(group) - len(free)) / len(group)  # the node's CPU load
                if best is None or busy < best[0]:
                    best = (busy, group, free)
        if best is not None:
            return least_loaded(best[1] if kind == "async" else best[2])
        if kind == "result":
            return HOLD
        return least_loaded(min(ready.values(), key=_node_load))
    if target == "node":
        node = ready.get(str(where[1]))
        if not node:
            known = any(proc.addr == str(where[1]) for proc in procs.values())
            state = "has no initialized server process" if known else "is not a known node"
            return f"node {where[1]} {state}"
        if kind == "async":
            return least_loaded(node)
        free = _free(node)
        if free:
            return least_loaded(free)
        return HOLD if kind == "result" else least_loaded(node)
    if target == "proc":
        proc = procs.get(where[1])
        if proc is None:
            return f"{where[1]} is not a known server process"
        if proc.state.value != "initialized":
            return f"server process {where[1]} is {proc.state.value}, not initialized"
        if kind == "result" and proc.cpu_busy:
            return HOLD
        return proc
    return f"no such target {where!r}"
