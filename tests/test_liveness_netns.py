"""Long jobs are not failures, across a real network (issue 10).

Host 0 and host 1 (network namespaces on one bridge) each run a ``discoronode`` with one
server process; host 2 runs a client with a private `Scheduler` and a pulse interval of 1 s
(so 5 s of silence is the write-off limit). One job blocks its server with ``time.sleep(30)``
and the other computes for 30 s without yielding, both from their first step: ``run_at``
still returns their coroutines at once, both finish normally, each is reported once, and
neither process is ever reported lost (their heartbeat threads answer for them over UDP).
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

    from procs import PeerProcess

pytestmark = pytest.mark.netns

UDP_PORT = 51373  # private: these namespaces exist only for this test

CLIENT_PROGRAM = """
import sys, time
import discoro
from discoro.cluster.status import status_name

node, udp_port, where0, where1 = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def sleeper(seconds, coro=None):
    import time
    time.sleep(seconds)  # blocks the server's event loop from the first step on
    yield coro.sleep(0)
    return "slept %d" % seconds


def spinner(seconds, coro=None):
    import time
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # computes without ever yielding
        pass
    yield coro.sleep(0)
    return "spun %d" % seconds


def status(coro=None):
    coro.set_daemon()
    while True:
        msg = yield coro.receive()
        if isinstance(msg, discoro.MonitorException):
            print("MONITOR", msg.args[0], msg.args[1][0].__name__, repr(msg.args[1][1]), flush=True)
            worker.send("ended")
        else:
            print("STATUS", status_name(msg.status), msg.info, flush=True)


def client(coro=None):
    computation = discoro.Computation(
        [sleeper, spinner], status_coro=discoro.Coro(status), pulse_interval=1
    )
    print("SCHEDULED", (yield computation.schedule()), flush=True)
    for _ in range(200):  # up to 20 s for discovery and setup
        if len((yield computation.procs())) >= 2:
            break
        yield coro.sleep(0.1)
    for where, func in ((where0, sleeper), (where1, spinner)):
        started = time.monotonic()
        rcoro = yield computation.run_at(where, func, 30)
        took = time.monotonic() - started
        print("RUNNING", func.__name__, type(rcoro).__name__, rcoro, "%.1f" % took, flush=True)
    for _ in range(2):
        if (yield coro.receive(timeout=90)) is None:
            print("TIMED OUT", flush=True)
    print("CLOSING", flush=True)
    yield computation.close()
    print("CLOSED", flush=True)


scheduler = discoro.Scheduler(node=node, udp_port=udp_port)
worker = discoro.Coro(client)
worker.value()
"""


@pytest.fixture
def lan(cluster_secret: str) -> Iterator[Topology]:
    why_not = netns_unavailable()
    if why_not is not None:
        pytest.skip(why_not)
    with Topology(3) as topology:
        yield topology


def start_node(lan: Topology, index: int, dest: str) -> PeerProcess:
    address = lan.addresses[index]
    process = lan.spawn(
        index, NODE_PROGRAM, "-c", "1", "--force", "-i", address, "-u", str(UDP_PORT),
        "-n", f"node{index}", "--dest_path", os.path.join(dest, f"node{index}"),
    )  # fmt: skip
    process.expect(rf"^discoronode: 1 processes ready at {re.escape(address)}$", timeout=20)
    return process


@pytest.mark.timeout(150)
def test_long_jobs_on_two_hosts_are_not_failures(lan: Topology) -> None:
    with tempfile.TemporaryDirectory(prefix="discoro-netns-") as dest:
        nodes = [start_node(lan, index, dest) for index in (0, 1)]
        client = lan.spawn(2, CLIENT_PROGRAM, lan.addresses[2], str(UDP_PORT), *lan.addresses[:2])
        client.expect(r"^SCHEDULED 0$", timeout=15)
        running = [
            client.expect(rf"^RUNNING {name} Coro (\S+) ([\d.]+)$", timeout=30)
            for name in ("sleeper", "spinner")
        ]
        client.expect(r"^CLOSED$", timeout=90)
    output = client.output
    for match in running:  # run_at got its handle although the job never yielded
        assert float(match[2]) < 10, output
    for match, value in zip(running, ("slept 30", "spun 30"), strict=True):
        reports = [line for line in output if line.startswith(f"MONITOR {match[1]} ")]
        assert reports == [f"MONITOR {match[1]} StopIteration {value!r}"], output
    before = output[: output.index("CLOSING")]
    lost = [line for line in output if re.match(r"^STATUS (Proc|Node)Disconnected ", line)]
    lost += [line for line in before if re.match(r"^STATUS (Proc|Node)Closed ", line)]
    assert not lost, output
    assert "TIMED OUT" not in output, output
    for node in nodes:  # no server was restarted
        assert not any("exited with status" in line for line in node.output), node.output
