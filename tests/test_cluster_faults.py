"""A server process killed in the middle of a computation: the client hears of it promptly,
the node restarts the process and the computation uses it again."""

from __future__ import annotations

import os
import re
import signal
import time
from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import run_client
from discoro.cluster.local import PROC_READY, LocalCluster

if TYPE_CHECKING:
    from collections.abc import Iterator

KILLED = """
def long_job(coro=None):
    yield coro.sleep(60)


def quick(client, coro=None):
    yield coro.sleep(0)
    client.send(("quick", str(coro.location)))


def client(coro=None):
    LISTENERS.append(coro)
    comp = yield from start([long_job, quick], coro)
    procs = yield comp.procs()
    rc = yield comp.run_at(procs[0], long_job)
    out("RUNNING", rc, procs[0])
    known = set(str(p) for p in procs)
    # wait for: its end (MonitorException), ProcDisconnected, a new process initialized
    lost = ended = again = False
    while not (lost and ended and again):
        msg = yield coro.receive(timeout=30)
        if msg is None:
            break
        if isinstance(msg, MonitorException):
            ended = ended or msg.args[0] == rc
        elif isinstance(msg, tuple) and msg[0] == "quick":
            out("QUICK", msg[1])
            again = True
        elif msg.status == Scheduler.ProcDisconnected:
            lost = lost or str(msg.info) == str(procs[0])
        elif msg.status == Scheduler.ProcInitialized and str(msg.info) not in known:
            known.add(str(msg.info))
            new = yield comp.run_at(msg.info, quick, coro)
            out("AGAIN", type(new).__name__, new.location == msg.info)
    yield comp.close()
    return "ok"
"""


@pytest.fixture
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


def pid_of(cluster: LocalCluster, where: str) -> int:
    for line in cluster.output:
        match = PROC_READY.match(line)
        if match and f"{match[2]}:{match[3]}" == where:
            return int(match[4])
    raise AssertionError(f"no ready line for {where} in:\n" + "\n".join(cluster.output))


@pytest.mark.timeout(60)
def test_killed_process(cluster: LocalCluster, udp_port: int) -> None:
    with run_client(KILLED, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        coro, where = client.expect(r"^RUNNING (\S+) (\S+)$").groups()
        os.kill(pid_of(cluster, where), signal.SIGKILL)
        killed = time.monotonic()
        monitor, _, initialized, _, quick = client.expect_all(
            rf"^MONITOR {re.escape(coro)} (\S+) ",
            rf"^STATUS ProcDisconnected {re.escape(where)}$",
            # the node restarts the process; it is set up for the computation and used again
            rf"^STATUS ProcInitialized (?!{re.escape(where)}$)(\S+)$",
            r"^AGAIN Coro True$",
            r"^QUICK (\S+)$",
            timeout=10,
        )
        assert time.monotonic() - killed < 10
        assert monitor[1] == "ProcessLost"
        assert quick[1] == initialized[1] != where
        client.expect(r"^DONE ok$")
        assert client.wait(10) == 0
