"""The scheduler's status bookkeeping and snapshot, driven by events without a network."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from discoro.cluster import protocol as p
from discoro.cluster.scheduler_state import PeerLost, ProcFound, SchedulerState, Send, Tick
from discoro.cluster.snapshot import find_running, snapshot
from test_scheduler_state import ME, ROUTER, Handle, loc, ready_state

if TYPE_CHECKING:
    from discoro.net.location import Location

INFO = {"name": "sched", "location": "127.0.0.9:1"}
LOAD = {"cpu": 12.5, "memory": 40.0, "disk": 70.0, "swap": 0.0, "name": "n-1", "node_name": "n"}


def started(
    state: SchedulerState, location: Location, coro: Handle, args: str = "1, 2"
) -> p.JobStarted:
    incarnation = state.procs[location].incarnation
    return p.JobStarted(location, "c1", 1, coro, "work", 1000.0, args, incarnation=incarnation)


def test_jobs_are_counted_and_listed_per_process_and_node() -> None:
    a, b = loc(1, 1), loc(1, 2)
    state, _ = ready_state(a, b)
    j1, j2, j3 = Handle("work/1@a", a), Handle("work/2@a", a), Handle("work/3@b", b)
    for location, job in ((a, j1), (a, j2), (b, j3)):
        state.handle(started(state, location, job))
    state.handle(p.JobDone(a, "c1", j1._id, incarnation=state.procs[a].incarnation))
    state.handle(
        p.JobDone(a, "c1", 12345, incarnation=state.procs[a].incarnation)
    )  # unknown: not counted
    view = snapshot(state, INFO)
    json.dumps(view)  # JSON-able
    assert view["totals"] == {"nodes": 1, "procs": 2, "submitted": 3, "done": 1, "running": 2}
    assert view["scheduler"]["computation"] == "c1"
    assert view["scheduler"]["client"] == str(ROUTER.location)
    (node,) = view["nodes"]
    assert (node["addr"], node["procs"], node["state"]) == ("127.0.0.1", 2, "initialized")
    assert (node["submitted"], node["done"], node["running"]) == (3, 1, 2)
    assert node["cpu"] is None and node["updated"] is None  # no pulse yet
    proc_a = view["procs"][0]
    assert (proc_a["location"], proc_a["submitted"], proc_a["done"]) == (str(a), 2, 1)
    assert proc_a["coros"] == [{"coro": "work/2@a", "name": "work", "args": "1, 2",
                                "start_time": 1000.0}]  # fmt: skip
    assert [job.name for job in find_running(state, ["work/3@b", "work/1@a"])] == ["work/3@b"]


def test_pulses_record_the_latest_figures() -> None:
    a, b = loc(1, 1), loc(1, 2)
    state, _ = ready_state(a, b)
    state.handle(p.ServerPulse(a, "c1", 0, LOAD, incarnation=state.procs[a].incarnation))
    state.handle(
        p.ServerPulse(
            b, "c1", 0, {**LOAD, "cpu": 50.0, "name": "n-2"}, incarnation=state.procs[b].incarnation
        )
    )
    state.handle(p.ServerPulse(loc(2, 1), "c1", 0, LOAD))  # an unknown process: ignored
    state.handle(
        p.ServerPulse(a, "c1", 0, incarnation=state.procs[a].incarnation)
    )  # an old sender without figures
    view = snapshot(state, INFO)
    (node,) = view["nodes"]
    assert node["name"] == "n" and node["cpu"] == 50.0 and node["memory"] == 40.0
    assert isinstance(node["updated"], float)
    assert [proc["name"] for proc in view["procs"]] == ["n-1", "n-2"]
    assert all(isinstance(proc["updated"], float) for proc in view["procs"])


def test_idle_processes_are_watched_and_report_figures() -> None:
    a, b = loc(1, 1), loc(1, 2)
    state = SchedulerState(ME)
    server_a = Handle("server-a", a)
    assert state.handle(ProcFound(a, server_a)) == [Send(server_a, p.Watch(ME))]
    state.handle(ProcFound(b, Handle("server-b", b)))
    assert state.handle(p.ServerPulse(a, None, 0, LOAD)) == []  # idle: no computation
    assert state.handle(Tick(1e12)) == []  # silence matters only in a computation
    view = snapshot(state, INFO)
    assert view["scheduler"]["computation"] is None
    (node,) = view["nodes"]
    assert node["cpu"] == 12.5 and isinstance(node["updated"], float)
    assert [proc["name"] for proc in view["procs"]] == ["n-1", str(b)]
    assert view["procs"][1]["updated"] is None
    assert [proc["state"] for proc in view["procs"]] == ["idle", "idle"]  # serving no one


def test_old_job_started_without_args_and_lost_process() -> None:
    a, b = loc(1, 1), loc(1, 2)
    state, _ = ready_state(a, b)
    old = p.JobStarted(a, "c1", 1, Handle("work/1@a", a), "work", 5.0, incarnation=1)  # no args
    state.handle(old)
    assert snapshot(state, INFO)["procs"][0]["coros"][0]["args"] == ""
    state.handle(PeerLost(a))
    view = snapshot(state, INFO)
    assert view["totals"] == {"nodes": 1, "procs": 1, "submitted": 1, "done": 0, "running": 0}
    assert [proc["state"] for proc in view["procs"]] == ["disconnected", "initialized"]


def test_args_repr_is_short() -> None:
    assert p.args_repr((1, "a"), {"k": None}) == "1, 'a', k=None"
    text = p.args_repr(tuple(range(100)), {"key": "x" * 500})
    assert len(text) <= 80 and text.endswith("...")


def test_load_meter_reports_percentages(tmp_path: object) -> None:
    from discoro.cluster.load import LoadMeter

    meter = LoadMeter(str(tmp_path), "n-1", "n")
    first, second = meter.measure(), meter.measure()
    for figures in (first, second):
        assert (figures["name"], figures["node_name"]) == ("n-1", "n")
        for key in ("cpu", "memory", "disk", "swap"):
            assert isinstance(figures[key], float) and 0.0 <= figures[key] <= 100.0


def test_status_table_lists_nodes_and_processes() -> None:
    from discoro.cli.status import format_table

    a = loc(1, 1)
    state, _ = ready_state(a)
    state.handle(p.ServerPulse(a, "c1", 0, LOAD, incarnation=state.procs[a].incarnation))
    state.handle(started(state, a, Handle("work/1@a", a)))
    lines = format_table(snapshot(state, INFO)).splitlines()
    assert lines[1] == "totals: 1 nodes, 1 processes, 1 submitted, 0 done, 1 running"
    assert any(line.split()[:5] == ["127.0.0.1", "n", "1", "initialized", "12.5"] for line in lines)
    assert any(line.startswith(str(a)) for line in lines)
    assert any("work/1@a  work(1, 2)" in line for line in lines)
