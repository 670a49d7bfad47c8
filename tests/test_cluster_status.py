"""Seeing the cluster (issue "See the cluster"): the scheduler's status snapshot and the
``discoro status`` program (terminate_coros: test_status_terminate.py), against a real local
node with two server processes on 127.0.0.1. Tests wait for printed lines and reported
figures (polled with deadlines), never for fixed sleeps."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

from discoro.cluster.local import LocalCluster, local_cluster
from procs import SRC, PeerProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# generous deadlines: each ``discoro status`` is a new Python process, slow to start under
# load and coverage, and the figures come with the node's pulses
pytestmark = pytest.mark.timeout(120)

SCHEDULER = "import sys\nfrom discoro.cli.scheduler import main\nsys.exit(main(sys.argv[1:]))\n"

CLIENT = """
import sys, threading
import discoro

node, udp_port, host, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])


def waiter(tag, count, coro=None):
    yield coro.receive()  # until told, or terminated
    return tag


def status(coro=None):
    coro.set_daemon()
    while True:
        msg = yield coro.receive()
        if isinstance(msg, discoro.MonitorException):
            print("MONITOR", msg.args[0], flush=True)


def client(coro=None):
    computation = discoro.Computation([waiter], status_coro=discoro.Coro(status))
    print("SCHEDULED", (yield computation.schedule(discoro.Location(host, port))), flush=True)
    for _ in range(600):  # up to a minute for both processes to be set up
        procs = yield computation.procs()
        if len(procs) >= 2:
            break
        yield coro.sleep(0.1)
    jobs = yield computation.run_procs(waiter, "job", 7)
    for job in jobs:
        print("JOB", job, flush=True)
    yield coro.receive()  # "stop"
    for job in jobs:
        job.send("done")
    print("CLOSED", (yield computation.close()), flush=True)


discoro.AsynCoro(node=node, udp_port=udp_port)
worker = discoro.Coro(client)
threading.Thread(target=lambda: (sys.stdin.read(), worker.send("stop")), daemon=True).start()
worker.value()
"""


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as running:
        yield running


def status_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCHEDULER, "status", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**__import__("os").environ, "PYTHONPATH": SRC},
    )


def poll(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Call ``check`` until it returns something true (then that), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s; last: {value!r}")
        time.sleep(0.2)


def test_discoro_status_shows_node_procs_and_coroutines(
    cluster: LocalCluster, udp_port: int
) -> None:
    net = ("-i", "127.0.0.1", "-u", str(udp_port))
    with PeerProcess(SCHEDULER, "scheduler", *net, "--zombie_period", "0") as scheduler:
        match = scheduler.expect(r"^discoro: scheduler ready at (127\.0\.0\.1):(\d+)$", 60)
        where = f"{match[1]}:{match[2]}"
        with PeerProcess(CLIENT, "127.0.0.1", str(udp_port), match[1], match[2]) as client:
            client.expect(r"^SCHEDULED 0$", 60)
            jobs = {client.expect(r"^JOB (\S+)$", 60)[1], client.expect(r"^JOB (\S+)$", 30)[1]}

            def ready() -> dict[str, Any] | None:
                result = status_cli("--scheduler", where, *net, "--json")
                assert result.returncode == 0, result.stderr
                snapshot: dict[str, Any] = json.loads(result.stdout)
                done = snapshot["totals"]["running"] == 2 and all(
                    node["cpu"] is not None for node in snapshot["nodes"]
                )
                return snapshot if done else None

            snapshot = poll(ready)
            assert snapshot["scheduler"]["location"] == where
            assert snapshot["scheduler"]["computation"] is not None
            assert snapshot["totals"] == {
                "nodes": 1, "procs": 2, "submitted": 2, "done": 0, "running": 2,
            }  # fmt: skip
            (node,) = snapshot["nodes"]
            assert node["addr"] == "127.0.0.1" and node["name"] == "local"
            assert node["procs"] == 2 and node["state"] == "initialized"
            for key in ("cpu", "memory", "disk", "swap"):
                assert isinstance(node[key], float) and 0.0 <= node[key] <= 100.0
            assert isinstance(node["updated"], float)
            coros = [coro for proc in snapshot["procs"] for coro in proc["coros"]]
            assert {coro["coro"] for coro in coros} == jobs
            assert {(coro["name"], coro["args"]) for coro in coros} == {("waiter", "'job', 7")}
            assert sorted(proc["name"] for proc in snapshot["procs"]) == ["local-1", "local-2"]

            table = status_cli("--scheduler", where, *net)
            assert table.returncode == 0, table.stderr
            assert "totals: 1 nodes, 2 processes, 2 submitted, 0 done, 2 running" in table.stdout
            assert any(line.startswith("127.0.0.1  local") for line in table.stdout.splitlines())
            assert all(job in table.stdout for job in jobs)
            # the computation by its readable name (client program, pid, start), not its id
            name = snapshot["scheduler"]["computation_name"]
            assert f"computation {name}, 0 queued" in table.stdout

            client.write("stop")
            client.proc.stdin.close()  # type: ignore[union-attr]
            client.expect(r"^CLOSED 0$", 60)


def test_discoro_status_shows_figures_of_an_idle_cluster(
    cluster: LocalCluster, udp_port: int
) -> None:
    net = ("-i", "127.0.0.1", "-u", str(udp_port))
    with PeerProcess(SCHEDULER, "scheduler", *net, "--zombie_period", "0") as scheduler:
        match = scheduler.expect(r"^discoro: scheduler ready at (127\.0\.0\.1):(\d+)$", 60)
        where = f"{match[1]}:{match[2]}"

        def figures() -> dict[str, Any] | None:
            result = status_cli("--scheduler", where, *net, "--json")
            assert result.returncode == 0, result.stderr
            snapshot: dict[str, Any] = json.loads(result.stdout)
            nodes = snapshot["nodes"]
            done = nodes and all(node["cpu"] is not None for node in nodes)
            return snapshot if done else None

        snapshot = poll(figures)  # idle pulses: every 2 s once the processes are found
        assert snapshot["scheduler"]["computation"] is None
        (node,) = snapshot["nodes"]
        assert node["addr"] == "127.0.0.1" and node["name"] == "local"
        for key in ("cpu", "memory", "disk", "swap"):
            assert isinstance(node[key], float) and 0.0 <= node[key] <= 100.0
        assert isinstance(node["updated"], float)


def test_discoro_status_finds_the_scheduler_by_discovery(
    cluster: LocalCluster, udp_port: int
) -> None:
    """Without ``--scheduler`` (issue 11: it crashed for want of the network layer)."""
    net = ("-i", "127.0.0.1", "-u", str(udp_port))
    with PeerProcess(SCHEDULER, "scheduler", *net, "--zombie_period", "0") as scheduler:
        match = scheduler.expect(r"^discoro: scheduler ready at (127\.0\.0\.1):(\d+)$", 60)
        where = f"{match[1]}:{match[2]}"

        def found() -> dict[str, Any] | None:
            result = status_cli(*net, "--json")
            assert result.returncode == 0, result.stderr
            assert "Traceback" not in result.stderr, result.stderr
            snapshot: dict[str, Any] = json.loads(result.stdout)
            return snapshot if snapshot["totals"]["procs"] == 2 else None

        snapshot = poll(found)
        assert snapshot["scheduler"]["location"] == where
        table = status_cli(*net)
        assert table.returncode == 0, table.stderr
        assert table.stdout.startswith("scheduler ") and f" at {where}: " in table.stdout
        assert "totals: 1 nodes, 2 processes" in table.stdout


def test_discoro_status_without_scheduler_fails_clearly(udp_port: int) -> None:
    where = f"127.0.0.1:{free_port()}"
    result = status_cli("--scheduler", where, "-i", "127.0.0.1", "-u", str(udp_port),
                        "--timeout", "1")  # fmt: skip
    assert result.returncode == 1
    assert f"no scheduler at {where} answered" in result.stderr
