"""``discoro ssh`` and `discoro.SSHCluster` against real sshd servers on two hosts.

Hosts 0 and 1 of a three-host `Topology` run OpenSSH (`sshhosts.SSHHosts`: throwaway host
and user keys, a pinned known_hosts); host 2 runs the launcher and a client. The cluster must
form (the scheduler and a node on host 0, a node on host 1), a client must run a coroutine on
each host, the secret must never be on a remote command line, and stopping the launcher
(SIGTERM, SIGKILL, ``close()``) must leave no remote process behind, checked by PID.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from typing import TYPE_CHECKING

import pytest

from netns import Topology, netns_unavailable
from sshhosts import SSHHosts, remote_programs, sshd_unavailable, wait_until_gone

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from procs import PeerProcess

pytestmark = [pytest.mark.netns, pytest.mark.timeout(180)]

UDP_PORT = 51371  # private: these namespaces exist only for this test
LAUNCHER = 2  # the host that runs the launcher and the client

LAUNCHER_PROGRAM = """
import sys
from discoro.cli.scheduler import main
sys.exit(main(["ssh", *sys.argv[1:]]))
"""

# argv: own address, udp port, scheduler ("host:port" or "ssh": start an SSHCluster with
# the JSON arguments in argv[4]). Runs `where` on every node, prints RAN lines.
CLIENT_PROGRAM = """
import json, sys
import discoro

own, udp_port, scheduler = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def where(client, coro=None):
    yield coro.sleep(0)
    client.send(str(coro.location))


def client(location, count, coro=None):
    computation = discoro.Computation([where])
    print("SCHEDULED", (yield computation.schedule(location)), flush=True)
    nodes = []
    for _ in range(300):  # up to 30 s for the servers to be set up
        nodes = yield computation.nodes()
        if len(nodes) >= count:
            break
        yield coro.sleep(0.1)
    for addr in sorted(nodes):
        yield computation.run_at(addr, where, coro)
        print("RAN", addr, (yield coro.receive(timeout=20)), flush=True)
    yield computation.close()


discoro.AsynCoro(node=own, udp_port=udp_port)
if scheduler == "ssh":
    options = json.loads(sys.argv[4])
    with discoro.SSHCluster(**options, report=lambda line: print("REPORT", line)) as cluster:
        print("CLUSTER", cluster.scheduler_location, sorted(cluster.nodes.values()), flush=True)
        discoro.Coro(client, cluster.scheduler_location, len(options["hosts"])).value()
    print("CLOSED", flush=True)
else:
    discoro.Coro(client, scheduler, int(sys.argv[4])).value()
"""


@pytest.fixture
def lan(cluster_secret: str, tmp_path: Path) -> Iterator[tuple[Topology, SSHHosts]]:
    why_not = netns_unavailable() or sshd_unavailable()
    if why_not is not None:
        pytest.skip(why_not)
    with Topology(3) as topology:
        hosts = SSHHosts(topology, [0, 1], tmp_path).start()
        try:
            yield topology, hosts
        finally:
            hosts.stop()


def launch(topology: Topology, hosts: SSHHosts, *extra: str) -> PeerProcess:
    """``discoro ssh`` on the launcher host for both sshd hosts, one server per node."""
    return topology.spawn(
        LAUNCHER, LAUNCHER_PROGRAM, *hosts.launcher_args(), "--python", sys.executable,
        "-c", "1", "--node-options", f"-u {UDP_PORT}", "--scheduler-options", f"-u {UDP_PORT}",
        *extra, *hosts.addresses,
    )  # fmt: skip


def wait_up(launcher: PeerProcess, hosts: SSHHosts) -> str:
    """Wait for the launcher's lines; the scheduler's location."""
    first, second = (re.escape(a) for a in hosts.addresses)
    launcher.expect_all(
        rf"^discoro ssh: {first}: scheduler ready at {first}:\d+$",
        rf"^discoro ssh: {first}: node ready: 1 processes at {first}$",
        rf"^discoro ssh: {second}: node ready: 1 processes at {second}$",
        timeout=90,
    )
    return launcher.expect(r"^discoro ssh: scheduler at (\S+)$", timeout=30)[1]


def running_remotely(hosts: SSHHosts) -> dict[int, str]:
    programs = {pid: line for ns in hosts.namespaces for pid, line in remote_programs(ns).items()}
    # the scheduler, a node and its server on host 0; a node and its server on host 1
    assert len(programs) >= 5, programs
    return programs


def test_cli_cluster_runs_on_each_host_and_sigterm_stops_it(
    lan: tuple[Topology, SSHHosts], cluster_secret: str
) -> None:
    topology, hosts = lan
    launcher = launch(topology, hosts)
    location = wait_up(launcher, hosts)
    assert location.startswith(hosts.addresses[0] + ":")
    programs = running_remotely(hosts)
    for pid, line in programs.items():
        assert cluster_secret not in line, f"the secret is on the command line of {pid}: {line}"
    assert any("--ssh-session" in line for line in programs.values())

    client = topology.spawn(
        LAUNCHER, CLIENT_PROGRAM, topology.addresses[LAUNCHER], str(UDP_PORT), location, "2"
    )
    client.expect(r"^SCHEDULED 0$", timeout=60)
    for address in hosts.addresses:
        client.expect(rf"^RAN {re.escape(address)} {re.escape(address)}:\d+$", timeout=60)
    assert client.wait(30) == 0

    launcher.proc.send_signal(signal.SIGTERM)
    launcher.expect(r"^discoro ssh: SIGTERM: stopping$", timeout=10)
    launcher.expect(r"^discoro ssh: stopped$", timeout=60)
    assert launcher.wait(10) == 0
    left = wait_until_gone(hosts.namespaces, 10, programs)
    assert not left, f"left running after SIGTERM: {left}"


def test_sigkill_of_the_launcher_ends_the_remote_programs(lan: tuple[Topology, SSHHosts]) -> None:
    topology, hosts = lan
    launcher = launch(topology, hosts)
    wait_up(launcher, hosts)
    programs = running_remotely(hosts)
    killed_at = time.monotonic()
    launcher.kill()
    left = wait_until_gone(hosts.namespaces, 30, programs)  # promised: 10 s; generous here
    took = time.monotonic() - killed_at
    assert not left, f"left running {took:.1f} s after SIGKILL of the launcher: {left}"
    print(f"remote programs gone {took:.1f} s after the launcher was killed")


def test_a_second_signal_closes_the_connections_and_the_programs_still_stop(
    lan: tuple[Topology, SSHHosts],
) -> None:
    topology, hosts = lan
    launcher = launch(topology, hosts)
    wait_up(launcher, hosts)
    programs = running_remotely(hosts)
    launcher.proc.send_signal(signal.SIGINT)
    launcher.proc.send_signal(signal.SIGTERM)  # another signal: two SIGINTs could merge
    # the two may be handled in either order; the second one closes the connections
    launcher.expect(r"^discoro ssh: SIG(INT|TERM): closing the SSH connections$", timeout=10)
    assert launcher.wait(30) == 0
    left = wait_until_gone(hosts.namespaces, 30, programs)  # promised: 10 s; generous here
    assert not left, f"left running after the connections closed: {left}"


def test_python_api_runs_on_each_host_and_close_stops_it(
    lan: tuple[Topology, SSHHosts],
) -> None:
    import json

    topology, hosts = lan
    options = {
        "hosts": hosts.addresses,
        "connect_options": hosts.connect_options(),
        "node_options": ["-c", "1", "-u", str(UDP_PORT)],
        "scheduler_options": f"-u {UDP_PORT}",
        "remote_python": sys.executable,
    }
    client = topology.spawn(
        LAUNCHER, CLIENT_PROGRAM, topology.addresses[LAUNCHER], str(UDP_PORT), "ssh",
        json.dumps(options),
    )  # fmt: skip
    first = re.escape(hosts.addresses[0])
    client.expect(rf"^CLUSTER {first}:\d+ \[", timeout=90)
    programs = running_remotely(hosts)
    client.expect(r"^SCHEDULED 0$", timeout=60)
    for address in hosts.addresses:
        client.expect(rf"^RAN {re.escape(address)} {re.escape(address)}:\d+$", timeout=60)
    client.expect(r"^CLOSED$", timeout=60)
    assert client.wait(30) == 0
    left = wait_until_gone(hosts.namespaces, 10, programs)
    assert not left, f"left running after close(): {left}"
