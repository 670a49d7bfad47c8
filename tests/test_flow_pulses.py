"""Control before data (issue 9): pulses keep a computation open while a large backlog of
user data waits on the same link.

Two hosts (network namespaces on one bridge): host 0 runs a client with a private scheduler,
host 1 a ``discoronode`` with one server process whose outgoing traffic is throttled to
100 Mbit/s. A job there sends the client 100 MiB in one burst: about 8 s of backlog on the
link that also carries the server's pulses to the scheduler, more than the 5 pulse intervals
(of 1 s) after which the scheduler writes a silent process off. The pulses must overtake the
backlog: the client gets every byte and the job's normal end, and no process is lost.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from typing import TYPE_CHECKING

import pytest

from netns import NODE_PROGRAM, Topology, netns_unavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.netns

UDP_PORT = 51362  # private: these namespaces exist only for this test
MIB = 100

# argv: own address, udp port, MiB to send
CLIENT_PROGRAM = """
import sys, threading
import discoro
from discoro.cluster.status import status_name

node, udp_port, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def blaster(client, count, coro=None):
    blob = b"x" * (1 << 20)
    for _ in range(count):  # one burst: all of it queued on the link at once
        client.send(blob)
    yield coro.sleep(0)  # held here until the link has drained
    return count


def status(coro=None):
    coro.set_daemon()
    while True:
        msg = yield coro.receive()
        if isinstance(msg, discoro.MonitorException):
            print("MONITOR", msg.args[1][0].__name__, msg.args[1][1], flush=True)
        else:
            print("STATUS", status_name(msg.status), msg.info, flush=True)


def client(coro=None):
    computation = discoro.Computation(
        [blaster], status_coro=discoro.Coro(status), pulse_interval=1
    )
    print("SCHEDULED", (yield computation.schedule()), flush=True)
    for _ in range(200):
        procs = yield computation.procs()
        if procs:
            break
        yield coro.sleep(0.1)
    job = yield computation.run(blaster, coro, mib)
    print("RUNNING", isinstance(job, discoro.Coro), flush=True)
    yield coro.sleep(1)  # a receiver that sleeps first
    received = 0
    while received < mib << 20:
        blob = yield coro.receive(timeout=60)
        if blob is None:
            break
        received += len(blob)
    print("RECEIVED", received >> 20, flush=True)
    yield computation.close()
    print("CLOSED", flush=True)


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
    with Topology(2) as topology:
        yield topology


def throttle(lan: Topology, index: int, rate: str) -> None:
    """Limit what host ``index`` sends (its own namespace's cable, nothing else)."""
    subprocess.run(
        ["ip", "netns", "exec", lan.hosts[index], "tc", "qdisc", "add", "dev", "eth0", "root",
         "tbf", "rate", rate, "burst", "256kb", "latency", "50ms"],
        check=True, capture_output=True, timeout=10,
    )  # fmt: skip


@pytest.mark.timeout(120)
def test_pulses_overtake_a_backlog_of_user_data(lan: Topology) -> None:
    with tempfile.TemporaryDirectory(prefix="discoro-netns-") as dest:
        address = lan.addresses[1]
        node = lan.spawn(
            1, NODE_PROGRAM, "-c", "1", "--force", "-i", address, "-u", str(UDP_PORT),
            "-n", "node1", "--dest_path", os.path.join(dest, "node1"),
        )  # fmt: skip
        node.expect(rf"^discoronode: 1 processes? ready at {re.escape(address)}$", timeout=20)
        throttle(lan, 1, "100mbit")
        client = lan.spawn(0, CLIENT_PROGRAM, lan.addresses[0], str(UDP_PORT), str(MIB))
        client.expect(r"^SCHEDULED 0$", timeout=20)
        client.expect(r"^RUNNING True$", timeout=30)
        # the job's end goes to the status coroutine, another receiver than the data's:
        # it may overtake the last megabytes still queued (order holds per coroutine pair)
        client.expect_all(rf"^RECEIVED {MIB}$", rf"^MONITOR StopIteration {MIB}$", timeout=80)
        client.expect(r"^CLOSED$", timeout=15)
        received_at = client.output.index(f"RECEIVED {MIB}")
        for line in client.output[:received_at]:  # no process was written off meanwhile
            assert not re.match(r"^STATUS (Proc|Node)(Disconnected|Closed)", line), client.output
        for line in client.output:
            assert "ProcessLost" not in line and "Traceback" not in line, client.output
