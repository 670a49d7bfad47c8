"""The status views name a computation by its client's name and start time, and call a node
that serves no computation idle, not closed (issue 11)."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

from discoro.cluster import protocol as p
from discoro.cluster.snapshot import snapshot
from procs import PeerProcess
from test_cluster_status import CLIENT, SCHEDULER, cluster, poll, status_cli  # noqa: F401
from test_scheduler_state import ROUTER, loc, ready_state

if TYPE_CHECKING:
    from discoro.cluster.local import LocalCluster

INFO = {"name": "sched", "location": "127.0.0.9:1"}
NAMED = r"python -c \(pid \d+\) at 127\.0\.0\.1:\d+, started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def test_snapshot_names_the_computation_and_shows_idle_processes() -> None:
    a, b = loc(1, 1), loc(1, 2)
    state, _ = ready_state(a, b)
    view = snapshot(state, INFO)["scheduler"]
    assert view["computation_name"] == str(ROUTER.location)  # an old client sends no name
    state.handle(p.CloseRequest("c1", 1, ROUTER))
    idle = snapshot(state, INFO)
    assert [proc["state"] for proc in idle["procs"]] == ["idle", "idle"]
    assert idle["nodes"][0]["state"] == "idle"
    started = time.mktime((2026, 1, 2, 3, 4, 5, 0, 0, -1))
    spec = p.ComputationSpec("c2", b"", [], [], None, ROUTER, 1.0, 10.0)
    spec.client_name, spec.created = "alice", started
    state.handle(p.Submit(spec))
    view = snapshot(state, INFO)["scheduler"]
    assert view["computation_name"] == "alice, started 2026-01-02 03:04:05"
    assert (view["client_name"], view["started"]) == ("alice", started)
    # a process that refused the current computation is closed for it, not idle
    state.handle(p.SetupDone(a, "c2", error="busy", incarnation=state.procs[a].incarnation))
    states = {proc["location"]: proc["state"] for proc in snapshot(state, INFO)["procs"]}
    assert states == {str(a): "closed", str(b): "initializing"}


def test_discoro_status_names_the_client_and_shows_the_node_idle_after_it(
    cluster: LocalCluster,  # noqa: F811
    udp_port: int,
) -> None:
    net = ("-i", "127.0.0.1", "-u", str(udp_port))
    with PeerProcess(SCHEDULER, "scheduler", *net, "--zombie_period", "0") as scheduler:
        match = scheduler.expect(r"^discoro: scheduler ready at (127\.0\.0\.1):(\d+)$", 20)
        where = f"{match[1]}:{match[2]}"

        def snapshot_now() -> dict[str, Any]:
            result = status_cli("--scheduler", where, *net, "--json")
            assert result.returncode == 0, result.stderr
            view: dict[str, Any] = json.loads(result.stdout)
            return view

        with PeerProcess(CLIENT, "127.0.0.1", str(udp_port), match[1], match[2]) as client:
            client.expect(r"^SCHEDULED 0$", 20)
            client.expect(r"^JOB ", 20)
            view = snapshot_now()["scheduler"]
            assert re.fullmatch(NAMED, view["computation_name"]), view
            client.write("stop")
            client.proc.stdin.close()  # type: ignore[union-attr]
            client.expect(r"^CLOSED 0$", 20)

        def idle() -> dict[str, Any] | None:
            view = snapshot_now()
            return view if view["scheduler"]["computation"] is None else None

        view = poll(idle)
        assert [node["state"] for node in view["nodes"]] == ["idle"]
        assert {proc["state"] for proc in view["procs"]} == {"idle"}
