"""Node allocation rules against nodes of different sizes, each on its own host (network
namespaces on one bridge; later-versions 3.2, 3.3, D9).

Hosts 0, 1 and 2 run a ``discoronode`` with 1, 2 and 3 server processes; host 3 runs a client
whose rules are: an unresolvable host (never applies), host 2 with ``cpus=2`` (a positive
count is honoured: 2 of its 3 servers), then every node with ``cpus=-1`` (its servers minus
one: host 0 gets 0, so it is not used; host 1 gets 1). The client sees each node's
`DiscoroNodeInfo` (its server count) and bare `DiscoroNodeAvailInfo` reports for the nodes it
uses, and nothing of host 0 (not even NodeDiscovered: it is not reserved).
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import TYPE_CHECKING

import pytest

from netns import NODE_PROGRAM, Topology, netns_unavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.netns

UDP_PORT = 51361  # private: these namespaces exist only for this test

CLIENT_PROGRAM = """
import sys, threading, time
import discoro
from discoro.discoro import DiscoroNodeAllocate, DiscoroNodeAvailInfo
from discoro.cluster.status import status_name

node, udp_port, big = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def where(coro=None):
    yield coro.sleep(0)
    return str(coro.location)


def status(coro=None):
    coro.set_daemon()
    reported = set()
    while True:
        msg = yield coro.receive()
        if isinstance(msg, DiscoroNodeAvailInfo):
            addr = msg.location.addr
            if addr not in reported:
                reported.add(addr)
                print("AVAIL", addr, msg.cpu is not None, msg.memory > 0, flush=True)
        elif isinstance(msg, discoro.MonitorException):
            pass
        elif status_name(msg.status) == "NodeDiscovered":
            print("DISCOVERED", msg.info, msg.info.cpus, msg.info.name, flush=True)
        elif status_name(msg.status) == "ProcInitialized":
            print("INITIALIZED", msg.info, flush=True)


def client(coro=None):
    rules = [DiscoroNodeAllocate("no-such-host.invalid", cpus=1),
             DiscoroNodeAllocate(big, cpus=2),
             DiscoroNodeAllocate("*", cpus=-1)]
    computation = discoro.Computation([where], status_coro=discoro.Coro(status),
                                      node_allocations=rules)
    print("SCHEDULED", (yield computation.schedule()), flush=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        procs = yield computation.procs()
        if len(procs) >= 3:
            break
        yield coro.sleep(0.1)
    yield coro.sleep(2)  # a node given more than allowed would show up meanwhile
    procs = yield computation.procs()
    counts = {}
    for loc in procs:
        counts[loc.addr] = counts.get(loc.addr, 0) + 1
    print("PROCS", sorted(counts.items()), flush=True)
    print("NODES", sorted((yield computation.nodes())), flush=True)
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
    with Topology(4) as topology:
        yield topology


@pytest.mark.timeout(120)
def test_allocation_against_nodes_of_different_sizes(lan: Topology) -> None:
    with tempfile.TemporaryDirectory(prefix="discoro-alloc-") as dest:
        for index, cpus in enumerate((1, 2, 3)):
            address = lan.addresses[index]
            node = lan.spawn(
                index, NODE_PROGRAM, "-c", str(cpus), "--force", "-i", address,
                "-u", str(UDP_PORT), "-n", f"node{index}",
                "--dest_path", os.path.join(dest, f"node{index}"),
            )  # fmt: skip
            node.expect(rf"^discoronode: {cpus} processes ready at {re.escape(address)}$", 30)
        host0, host1, host2 = lan.addresses[:3]
        client = lan.spawn(3, CLIENT_PROGRAM, lan.addresses[3], str(UDP_PORT), host2)
        client.expect(r"^SCHEDULED 0$", timeout=30)
        one, two = re.escape(host1), re.escape(host2)
        client.expect_all(
            rf"^DISCOVERED {one} 2 node1$",
            rf"^DISCOVERED {two} 3 node2$",
            rf"^PROCS \[\('{one}', 1\), \('{two}', 2\)\]$",
            rf"^NODES \['{one}', '{two}'\]$",
            rf"^AVAIL {one} True True$",
            rf"^AVAIL {two} True True$",
            timeout=90,
        )
        assert not any(line.startswith(f"INITIALIZED {host0}:") for line in client.output)
        assert not any(line.startswith(f"DISCOVERED {host0} ") for line in client.output)
        assert not any(line.startswith(f"AVAIL {host0} ") for line in client.output)
