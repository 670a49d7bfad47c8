"""A busy server stopped (SIGSTOP) for 20 s and continued: every job reported once (issue 10).

Host 0 and host 1 (network namespaces on one bridge) each run a ``discoronode`` with one
server process; host 2 runs the client of `exactly_once` (a private scheduler, 30 numbered
one-second jobs, 4 at a time). Host 1's server is stopped while it runs jobs: the scheduler
writes it off within seconds and the client reports its jobs lost, once, and runs them
again elsewhere. After 20 s the server continues: what its old jobs finish is dropped (the
incarnation is fenced), it learns it was written off, and rejoins as a new incarnation:
initialized again and used again (a probe job runs there). Every number finished exactly
once; no coroutine was reported twice.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import time
from typing import TYPE_CHECKING

import psutil
import pytest

from exactly_once import CLIENT_PROGRAM, check_exactly_once
from netns import NODE_PROGRAM, Topology, netns_unavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from procs import PeerProcess

pytestmark = pytest.mark.netns

UDP_PORT = 51374  # private: these namespaces exist only for this test
JOBS = 30


@pytest.fixture
def lan(cluster_secret: str) -> Iterator[Topology]:
    why_not = netns_unavailable()
    if why_not is not None:
        pytest.skip(why_not)
    with Topology(3) as topology:
        yield topology


def start_node(
    lan: Topology, index: int, dest: str, servers: int = 1, udp_port: int = UDP_PORT
) -> PeerProcess:
    address = lan.addresses[index]
    process = lan.spawn(
        index, NODE_PROGRAM, "-c", str(servers), "--force", "-i", address,
        "-u", str(udp_port), "-n", f"node{index}",
        "--dest_path", os.path.join(dest, f"node{index}"),
    )  # fmt: skip
    process.expect(rf"^discoronode: {servers} processes ready at {re.escape(address)}$", timeout=20)
    return process


def server_processes(node: PeerProcess) -> list[psutil.Process]:
    """The server processes the node program runs now."""
    found = []
    for child in psutil.Process(node.proc.pid).children(recursive=True):
        try:
            if "discoro.cluster.server_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.timeout(170)
def test_stopped_server_is_written_off_fenced_and_used_again(lan: Topology) -> None:
    with tempfile.TemporaryDirectory(prefix="discoro-netns-") as dest:
        start_node(lan, 0, dest)
        node1 = start_node(lan, 1, dest)
        client = lan.spawn(2, CLIENT_PROGRAM, lan.addresses[2], str(UDP_PORT), str(JOBS), "1", "4")
        client.expect(r"^SCHEDULED 0$", timeout=15)
        client.expect(r"^PROCS 2$", timeout=25)
        stopped_addr = re.escape(lan.addresses[1])
        # it is busy: a job has just started there (each job takes a second)
        where = client.expect(rf"^REPORT \d+ \S+ ({stopped_addr}:\d+) StopIteration$", 30)[1]
        client.expect(rf"^STATUS CoroCreated CoroInfo\(coro=work/\d+@{re.escape(where)},", 30)
        [server] = server_processes(node1)
        server.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            client.expect(rf"^STATUS ProcDisconnected {re.escape(where)}$", timeout=15)
            time.sleep(max(0.0, 20 - (time.monotonic() - stopped_at)))  # the stop's length
        finally:
            server.send_signal(signal.SIGCONT)
        client.expect(rf"^ALL DONE {JOBS}$", timeout=60)
        # it rejoined as a new incarnation and is used again
        initialized = rf"^STATUS ProcInitialized {re.escape(where)}$"
        deadline = time.monotonic() + 20
        while sum(1 for line in client.output if re.match(initialized, line)) < 2:
            assert time.monotonic() < deadline, client.output
            client.expect(initialized, timeout=max(0.1, deadline - time.monotonic()))
        client.write(f"RUN {lan.addresses[1]}")
        client.expect(rf"^REPORT -1 \S+ {re.escape(where)} StopIteration$", timeout=15)
        found = check_exactly_once(client.output, JOBS)
        lost = [
            n for n, _, location, kind in found if location == where and kind != "StopIteration"
        ]
        assert lost, client.output  # jobs were running there when it stopped
        assert server.is_running() and server.status() != psutil.STATUS_STOPPED
        for line in client.output:
            assert "Traceback" not in line, client.output
