"""A server wedged in a job that never yields is not orphaned when its node program dies:
its watchdog ends it (issue: faults without lost or duplicated work)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import TYPE_CHECKING

import psutil
import pytest

import discoro
from cluster_programs import run_client
from discoro.cluster.local import PROC_READY
from discoro.cluster.server_main import ORPHAN_GRACE

if TYPE_CHECKING:
    from discoro.cluster.local import LocalCluster

WEDGED = """
def spin(coro=None):
    while True:  # never yields: the server's event loop is blocked for good (run_at still
        pass  # gets its reply: a job's first step waits until that reply went out)
    yield


def client(coro=None):
    comp = yield from start([spin], coro, nprocs=1)
    procs = yield comp.procs()
    rc = yield comp.run_at(procs[0], spin)
    out("RUNNING", type(rc).__name__)
    yield coro.receive(timeout=60)  # the test ends this program
"""


def server_pids(cluster: LocalCluster) -> list[int]:
    return [int(m[4]) for line in cluster.output if (m := PROC_READY.match(line))]


def wait_until_spinning(process: psutil.Process, cpu_seconds: float = 1.0) -> None:
    """Wait until ``process`` has burnt ``cpu_seconds`` more CPU time (bounded)."""
    start = sum(process.cpu_times()[:2])
    deadline = time.monotonic() + 30
    while sum(process.cpu_times()[:2]) - start < cpu_seconds:
        assert time.monotonic() < deadline, "the job never started spinning"
        time.sleep(0.1)


def gone_within(pid: int, seconds: float) -> bool:
    try:
        process = psutil.Process(pid)
        process.wait(seconds)  # works for a process that is not our child too
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True


@pytest.mark.timeout(90)
def test_a_wedged_server_exits_after_its_node_is_killed(cluster_secret: str, udp_port: int) -> None:
    node = discoro.local_cluster(procs=1, udp_port=udp_port, secret=cluster_secret)
    with node, run_client(WEDGED, udp_port, nprocs=1) as client:
        client.expect(r"^RUNNING Coro$", timeout=30)
        (pid,) = server_pids(node)
        wait_until_spinning(psutil.Process(pid))
        assert node._popen is not None
        os.kill(node._popen.pid, signal.SIGKILL)  # the node program dies; its server spins on
        node._popen.wait(10)
        killed = time.monotonic()
        try:
            assert gone_within(pid, ORPHAN_GRACE + 10), "the wedged server outlived its node"
            # it was the watchdog: the server could not have quit by itself (its loop spins)
            assert time.monotonic() - killed >= ORPHAN_GRACE - 0.5
        finally:  # a failing run leaves no spinning orphan behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
