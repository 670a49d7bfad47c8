"""A discoro cluster on three hosts (network namespaces on one bridge), for real.

Host 0 and host 1 each run a ``discoronode`` with two server processes (bound to the host's
address, on a discovery port private to the test); host 2 runs a client with a private
`Scheduler`. Broadcast discovery must find both nodes, runs must work on both, and when a
node dies (SIGKILL of the node and its server processes) or is cut off the network (its
cable pulled), the client's status coroutine must hear ``ProcDisconnected`` for each of its
processes, ``NodeDisconnected`` and a `MonitorException` for every coroutine that was running
there, within seconds (MinPulseInterval is 1 s; 5 missed pulses mark a peer dead).
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
from typing import TYPE_CHECKING

import pytest

from netns import NODE_PROGRAM, Topology, netns_unavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from procs import PeerProcess

pytestmark = pytest.mark.netns

UDP_PORT = 51360  # private: these namespaces exist only for this test

# argv: own address, udp port. Prints what the test waits for; runs until stdin ends.
CLIENT_PROGRAM = """
import sys, threading
import discoro
from discoro.cluster.status import status_name

node, udp_port = sys.argv[1], int(sys.argv[2])


def answer(value, client, coro=None):
    yield coro.sleep(0)
    client.send((str(coro.location), value * 2))
    return value


def sleeper(seconds, coro=None):
    yield coro.sleep(seconds)
    return "slept"


def status(coro=None):
    coro.set_daemon()
    while True:
        msg = yield coro.receive()
        if isinstance(msg, discoro.MonitorException):
            print("MONITOR", msg.args[0].location, msg.args[1][0].__name__, flush=True)
        else:
            info = msg.info.coro if status_name(msg.status) == "CoroCreated" else msg.info
            print("STATUS", status_name(msg.status), info, flush=True)


def client(coro=None):
    computation = discoro.Computation([answer, sleeper], status_coro=discoro.Coro(status))
    print("SCHEDULED", (yield computation.schedule()), flush=True)
    for _ in range(200):  # up to 20 s for discovery and setup
        procs = yield computation.procs()
        if len(procs) >= 4:
            break
        yield coro.sleep(0.1)
    nodes = yield computation.nodes()
    print("NODES", " ".join(sorted(nodes)), flush=True)
    print("PROCS", len(procs), flush=True)
    for i, addr in enumerate(sorted(nodes)):
        rcoro = yield computation.run_at(addr, answer, 20 + i, coro)
        where, value = yield coro.receive(timeout=10)
        print("RESULT", where.split(":")[0], value, isinstance(rcoro, discoro.Coro), flush=True)
    sleepers = yield computation.run_procs(sleeper, 300)
    for rcoro in sleepers:
        print("SLEEPING", rcoro.location, flush=True)
    # the scheduler learns of a job from the server (JobStarted) a moment after this client
    # has the coroutine: wait until it counts every sleeper as running (polled, bounded)
    for _ in range(200):
        if scheduler.status()["totals"]["running"] >= len(sleepers):
            break
        yield coro.sleep(0.05)
    print("RUNNING", scheduler.status()["totals"]["running"], flush=True)
    yield coro.sleep(120)  # until the test ends us


scheduler = discoro.Scheduler(node=node, udp_port=udp_port)
worker = discoro.Coro(client)
threading.Thread(target=lambda: (sys.stdin.read(), worker.terminate()), daemon=True).start()
worker.value()
"""


@pytest.fixture
def lan(cluster_secret: str) -> Iterator[Topology]:
    why_not = netns_unavailable()
    if why_not is not None:
        pytest.skip(why_not)
    with Topology(3) as topology:
        yield topology


def start_node(lan: Topology, index: int, dest: str) -> tuple[PeerProcess, list[int]]:
    """A discoronode with 2 server processes on host ``index``; it and its servers' pids."""
    address = lan.addresses[index]
    process = lan.spawn(
        index, NODE_PROGRAM, "-c", "2", "--force", "-i", address, "-u", str(UDP_PORT),
        "-n", f"node{index}", "--dest_path", os.path.join(dest, f"node{index}"),
    )  # fmt: skip
    process.expect(rf"^discoronode: 2 processes ready at {re.escape(address)}$", timeout=20)
    pids = [
        int(m[1])
        for line in process.output
        if (m := re.search(r"^discoronode: process \d ready at \S+ \(pid (\d+)\)$", line))
    ]
    assert len(pids) == 2, process.output
    return process, pids


def expect_lost(client: PeerProcess, lan: Topology, index: int, timeout: float) -> None:
    """The status coroutine hears that host ``index``'s node and both processes are gone,
    and gets a MonitorException for each sleeper that ran there."""
    address = re.escape(lan.addresses[index])
    sleeping = [line.split()[1] for line in client.output if line.startswith("SLEEPING")]
    mine = [loc for loc in sleeping if loc.startswith(lan.addresses[index] + ":")]
    assert len(mine) == 2, client.output
    client.expect_all(
        *(rf"^STATUS ProcDisconnected {re.escape(loc)}$" for loc in mine),
        rf"^STATUS NodeDisconnected {address}$",
        *(rf"^MONITOR {re.escape(loc)} ProcessLost$" for loc in mine),
        timeout=timeout,
    )


@pytest.mark.timeout(90)
def test_cluster_across_hosts_survives_a_killed_and_a_cut_off_node(lan: Topology) -> None:
    with tempfile.TemporaryDirectory(prefix="discoro-netns-") as dest:
        node_a, pids_a = start_node(lan, 0, dest)
        start_node(lan, 1, dest)
        client = lan.spawn(2, CLIENT_PROGRAM, lan.addresses[2], str(UDP_PORT))
        client.expect(r"^SCHEDULED 0$", timeout=15)

        # broadcast discovery found both nodes and all 4 processes; runs work on both
        a, b = lan.addresses[0], lan.addresses[1]
        client.expect(rf"^NODES {re.escape(a)} {re.escape(b)}$", timeout=25)
        client.expect(r"^PROCS 4$", timeout=5)
        client.expect_all(
            rf"^RESULT {re.escape(a)} 40 True$", rf"^RESULT {re.escape(b)} 42 True$", timeout=15
        )
        client.expect(r"^RUNNING 4$", timeout=15)

        # node A dies: its server processes and the node program are killed
        for pid in pids_a:
            os.kill(pid, signal.SIGKILL)
        node_a.kill()
        expect_lost(client, lan, 0, timeout=10)

        # node B is cut off: no FIN, no RST, only silence
        lan.unplug(1)
        expect_lost(client, lan, 1, timeout=12)
        for line in client.output:  # nothing else went wrong on the way
            assert "Traceback" not in line, client.output
