"""Several hosts on one LAN, for real: peer processes in network namespaces on a bridge.

Broadcast discovery across hosts, re-broadcast of an introduction, a peer killed
(SIGKILL) and a peer whose cable is pulled and put back. Each process runs `PEER_PROGRAM`
with node = its namespace's address; the tests wait for the lines it prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from netns import PEER_PROGRAM, Topology, netns_unavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from procs import PeerProcess

pytestmark = pytest.mark.netns

UDP_PORT = 51350  # the default port is safe here: these namespaces are private to the test


@pytest.fixture(scope="module")
def lan() -> Iterator[Topology]:
    why_not = netns_unavailable()
    if why_not is not None:
        pytest.skip(why_not)
    with Topology(3) as topology:
        yield topology


@pytest.fixture
def hosts(lan: Topology, cluster_secret: str) -> Iterator[Topology]:
    """The LAN, with every process started by the test stopped after it."""
    yield lan
    for process in lan.processes:
        process.stop()
    lan.processes.clear()


def start(lan: Topology, index: int, udp_port: int = UDP_PORT) -> PeerProcess:
    process = lan.spawn(index, PEER_PROGRAM, lan.addresses[index], str(udp_port), f"h{index}")
    process.expect(rf"^READY h{index} {lan.addresses[index]}:\d+$")
    return process


def expect_peers(process: PeerProcess, state: str, *names: str, timeout: float = 10) -> None:
    process.expect_all(*(rf"^STATUS {state} {name} " for name in names), timeout=timeout)


def start_cluster(lan: Topology) -> list[PeerProcess]:
    processes = [start(lan, i) for i in range(3)]
    for i, process in enumerate(processes):
        expect_peers(process, "Online", *(f"h{j}" for j in range(3) if j != i))
    return processes


def test_hosts_discover_each_other_by_broadcast(hosts: Topology) -> None:
    processes = start_cluster(hosts)
    for i, process in enumerate(processes):
        others = [hosts.addresses[j] for j in range(3) if j != i]
        online = [line for line in process.output if line.startswith("STATUS Online")]
        assert sorted(line.split()[3].split(":")[0] for line in online) == others


def test_introduction_is_rebroadcast_on_the_receivers_lan(hosts: Topology) -> None:
    other_port = UDP_PORT + 1
    h1, h2 = start(hosts, 1, other_port), start(hosts, 2, other_port)
    expect_peers(h1, "Online", "h2")
    h0 = start(hosts, 0)  # its broadcasts go to a port nobody else listens on
    h0.write(f"PEER {hosts.addresses[1]} {other_port} broadcast")
    h0.expect(r"^PEER 0$")
    expect_peers(h0, "Online", "h1", "h2")
    expect_peers(h1, "Online", "h0")
    expect_peers(h2, "Online", "h0")  # heard only through h1's re-broadcast


def test_killed_host_goes_offline_and_monitors_hear(hosts: Topology) -> None:
    h0, h1, h2 = start_cluster(hosts)
    h0.write("MONITOR service-h2")
    h0.expect(r"^MONITORING service-h2 0$")
    h2.kill()
    h0.expect_all(r"^STATUS Offline h2 ", r"^MONITOR MonitorException$", timeout=5)
    expect_peers(h1, "Offline", "h2", timeout=5)


@pytest.mark.timeout(90)
def test_unplugged_host_goes_offline_and_comes_back(hosts: Topology) -> None:
    h0, h1, h2 = start_cluster(hosts)
    hosts.unplug(2)
    # silence is noticed after 5 pings (1 s apart), then re-dialling gives up
    expect_peers(h0, "Offline", "h2", timeout=25)
    expect_peers(h1, "Offline", "h2", timeout=5)
    expect_peers(h2, "Offline", "h0", "h1", timeout=10)
    hosts.plug(2)
    for process in (h0, h1):
        process.write(f"PEER {hosts.addresses[2]} {UDP_PORT}")
        process.expect(r"^PEER 0$")
    expect_peers(h0, "Online", "h2")
    expect_peers(h1, "Online", "h2")
    expect_peers(h2, "Online", "h0", "h1")
