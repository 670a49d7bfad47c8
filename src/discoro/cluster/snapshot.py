"""The scheduler's status snapshot: what ``discoro status`` and the status page show.

`snapshot(state, scheduler)` turns a `SchedulerState` into plain JSON-able data (str, int,
float, None, lists and dicts only; no coroutine handles), so it can be sent as a
`StatusReport`, dumped as JSON or served over HTTP. It only reads the state. Layout:

    {"scheduler": {"name", "location", "computation", "computation_name", "client",
                   "client_name", "started", "queued", "time"},
     "totals": {"nodes", "procs", "submitted", "done", "running"},
     "nodes": [{"addr", "name", "procs", "state", "cpu", "memory", "disk", "swap",
                "submitted", "done", "running", "updated"}],
     "procs": [{"location", "node", "name", "state", "submitted", "done", "running",
                "updated", "stuck", "coros": [{"coro", "name", "args", "start_time"}]}]}

``computation`` is the current computation's id and ``computation_name`` what to show for
it (its client's name and when the client submitted it: ``started``, wall clock). A
process's ``state`` is ``idle`` while it serves no computation (found, or closed after one),
else initializing, initialized, closed (for the current computation) or disconnected; a
node's is the most active of its processes'.

Nodes are sorted by address, processes by location. Totals count nodes and processes that
are not disconnected, and the coroutines of every process the scheduler knows. Figures are
percentages, None until a process of that node has pulsed with them (pulses flow while a
computation is installed); ``updated`` is the wall-clock time of the latest pulse. A
process's ``stuck`` is how many seconds its event loop has been stuck in user code (new runs
go elsewhere meanwhile: `discoro.cluster.loop_watch`), None while it runs.
"""

from __future__ import annotations

import time
from typing import Any

from discoro.cluster.load import FIGURES
from discoro.cluster.scheduler_state import Proc, ProcState, SchedulerState

# a node's state is the most active state among its processes
STATE_ORDER = ("initialized", "initializing", "closed", "idle", "disconnected")


def display_state(proc: Proc, computing: bool) -> str:
    """A process's state as status displays show it (``computing``: a computation is
    current)."""
    if proc.state is ProcState.DISCOVERED or (proc.state is ProcState.CLOSED and not computing):
        return "idle"
    return str(proc.state.value)


def computation_name(client_name: str, started: float | None, uid: str) -> str:
    """ "NAME, started YYYY-MM-DD HH:MM:SS" (the scheduler's local time), or what is known."""
    if not client_name:
        return uid
    if not started:
        return client_name
    return f"{client_name}, started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}"


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def proc_entry(proc: Proc, computing: bool = False, now: float = 0.0) -> dict[str, Any]:
    """A process's entry; ``now``: the scheduler's monotonic clock (for ``stuck``)."""
    coros = [
        {
            "coro": str(job.coro),
            "name": str(job.func_name),
            "args": str(job.args),
            "start_time": float(job.start_time),
        }
        for job in sorted(proc.jobs.values(), key=lambda job: job.start_time)
    ]
    return {
        "location": str(proc.location),
        "node": proc.addr,
        "name": str(proc.load_figures.get("name") or proc.location),
        "state": display_state(proc, computing),
        "submitted": proc.submitted,
        "done": proc.done,
        "running": len(proc.jobs),
        "updated": proc.updated,
        "stuck": round(proc.loop.stuck_for(now), 1) if proc.stuck else None,
        "coros": coros,
    }


def node_entry(state: SchedulerState, addr: str, procs: list[Proc]) -> dict[str, Any]:
    load = state.node_load.get(addr)
    figures = load.figures if load is not None else {}
    computing = state.current is not None
    present = {display_state(proc, computing) for proc in procs}
    node_state = next((s for s in STATE_ORDER if s in present), "unknown")
    entry: dict[str, Any] = {
        "addr": addr,
        "name": str(figures.get("node_name") or addr),
        "procs": sum(proc.state is not ProcState.DISCONNECTED for proc in procs),
        "state": node_state,
    }
    entry.update({key: _number(figures.get(key)) for key in FIGURES})
    entry["submitted"] = sum(proc.submitted for proc in procs)
    entry["done"] = sum(proc.done for proc in procs)
    entry["running"] = sum(len(proc.jobs) for proc in procs)
    entry["updated"] = load.updated if load is not None else None
    return entry


def snapshot(state: SchedulerState, scheduler: dict[str, Any]) -> dict[str, Any]:
    """The status snapshot; ``scheduler`` gives ``name`` and ``location`` (strings)."""
    current = state.current
    router = current.spec.router if current is not None else None
    client = getattr(router, "location", None)
    nodes = [node_entry(state, addr, procs) for addr, procs in sorted(state.nodes().items())]
    computing = current is not None
    now = state.clock()
    procs = [
        proc_entry(proc, computing, now) for proc in sorted(state.procs.values(), key=_proc_key)
    ]
    spec = current.spec if current is not None else None
    client_name = str(getattr(spec, "client_name", "") or "")
    started = float(getattr(spec, "created", 0.0) or 0.0) or None
    return {
        "scheduler": {
            "name": str(scheduler.get("name") or ""),
            "location": str(scheduler.get("location") or ""),
            "computation": spec.uid if spec is not None else None,
            "computation_name": (
                computation_name(client_name or str(client or ""), started, spec.uid)
                if spec is not None
                else None
            ),
            "client": str(client) if client is not None else None,
            "client_name": client_name or None,
            "started": started,
            "queued": len(state.queue),
            "time": time.time(),
        },
        "totals": {
            "nodes": sum(node["procs"] > 0 for node in nodes),
            "procs": sum(proc["state"] != ProcState.DISCONNECTED.value for proc in procs),
            "submitted": sum(node["submitted"] for node in nodes),
            "done": sum(node["done"] for node in nodes),
            "running": sum(node["running"] for node in nodes),
        },
        "nodes": nodes,
        "procs": procs,
    }


def _proc_key(proc: Proc) -> tuple[str, int]:
    return (proc.addr, int(getattr(proc.location, "port", 0) or 0))


def find_running(state: SchedulerState, names: list[str]) -> list[Any]:
    """The handles of the running coroutines whose ``str()`` is in ``names``."""
    wanted = set(names)
    return [
        job.coro
        for proc in state.procs.values()
        for job in proc.jobs.values()
        if str(job.coro) in wanted
    ]
