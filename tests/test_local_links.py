"""Same-host links over abstract Unix sockets (`discoro.net.local_links`), with real processes.

- A client with its scheduler, a ``discoronode`` and its server process on one host (one
  network namespace) link over Unix sockets: each reports the socket family of its links.
- ``DISCORO_LOCAL_LINKS=0`` gives TCP.
- Processes in two network namespaces on a bridge link over TCP; two in one namespace over
  a Unix socket.
- A squatter that holds a process's abstract name first (accepts and closes, sends garbage,
  or says nothing) does not stop a peer from using that process: the peer falls back to TCP
  with one warning, and never tries the squatter again.
"""

from __future__ import annotations

import ast
import os
import socket
import threading
from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import run_client
from discoro.net import local_links
from discoro.net.location import Location
from netns import Topology, netns_unavailable
from procs import PeerProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro.cluster.local import LocalCluster

TIMEOUT = 30.0
OFF = {local_links.LOCAL_LINKS_ENV: "0"}
#: The tests that expect Unix links skip when the suite runs with them off (TCP checks).
needs_local_links = pytest.mark.skipif(
    not local_links.enabled(None), reason=f"{local_links.LOCAL_LINKS_ENV}=0: TCP links only"
)

# The socket family of every link of the process it runs in, by peer location.
LINK_FAMILIES = """
def link_families():
    import socket
    import discoro
    from discoro.net.runtime import network_of

    network = network_of(discoro.AsynCoro.instance())
    families = {}
    for peer in list(network.peers.values()):
        link = peer.link
        sock = None if link is None or link.transport is None else (
            link.transport.get_extra_info("socket"))
        if sock is not None:
            families[str(peer.location)] = socket.AddressFamily(sock.family).name
    return families
"""

CLIENT = (
    LINK_FAMILIES
    + """
def job(client, coro=None):
    yield coro.sleep(0)
    client.send(link_families())


def client(coro=None):
    comp = yield from start([job, link_families], coro, nprocs=1)
    yield comp.run(job, coro)
    server = yield coro.receive(timeout=20)
    out("SERVER", " ".join(sorted(set(server.values()))))
    out("CLIENT", link_families())
    yield comp.close()
    return "ok"
"""
)


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=1, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


@needs_local_links
def test_client_scheduler_node_and_server_on_one_host_link_over_unix_sockets(
    cluster: LocalCluster, udp_port: int
) -> None:
    with run_client(CLIENT, udp_port, nprocs=1) as client:
        client.expect(r"^SCHEDULE 0$", timeout=TIMEOUT)
        client.expect(r"^SERVER AF_UNIX$", timeout=TIMEOUT)
        families = client.expect(r"^CLIENT (\{.*\})$", timeout=TIMEOUT)[1]
        links = ast.literal_eval(families)
        assert links and set(links.values()) == {"AF_UNIX"}, client.output
        assert set(links) >= {str(location) for location in cluster.procs.values()}
        client.expect(r"^DONE ok$", timeout=TIMEOUT)
    # every server process listens at its abstract name (the kernel's own table says so)
    with open("/proc/net/unix") as table:
        names = {line.split()[-1] for line in table if line.split()[-1].startswith("@discoro/")}
    assert {f"@discoro/{location}" for location in cluster.procs.values()} <= names


def test_local_links_off_gives_tcp(cluster: LocalCluster, udp_port: int) -> None:
    with run_client(CLIENT, udp_port, nprocs=1, env=OFF) as client:
        client.expect(r"^SCHEDULE 0$", timeout=TIMEOUT)
        client.expect(r"^SERVER .*AF_INET", timeout=TIMEOUT)  # its link to the client
        links = ast.literal_eval(client.expect(r"^CLIENT (\{.*\})$", timeout=TIMEOUT)[1])
        assert links and set(links.values()) == {"AF_INET"}, client.output
        client.expect(r"^DONE ok$", timeout=TIMEOUT)


# argv: node address, discovery port, name. Prints READY and, for each peer online, the
# socket family of the link to it; ``LINKS`` on stdin prints them all again.
PEER = (
    LINK_FAMILIES
    + """
import sys
import discoro
from discoro import Coro, PeerStatus

node, udp_port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kernel = discoro.AsynCoro(node=node, udp_port=udp_port, name=name)
print("READY", name, kernel.location, flush=True)


def watch(coro=None):
    kernel.peer_status(coro)
    while True:
        status = yield coro.receive()
        if status.status == PeerStatus.Online:
            family = link_families().get(str(status.location))
            print("ONLINE", status.name, family, flush=True)


Coro(watch)
for line in sys.stdin:
    if line.strip() == "LINKS":
        for location, family in sorted(link_families().items()):
            print("LINK", location, family, flush=True)
"""
)


@needs_local_links
@pytest.mark.netns
def test_processes_in_two_namespaces_link_over_tcp_and_in_one_over_unix(
    cluster_secret: str,
) -> None:
    why_not = netns_unavailable()
    if why_not is not None:
        pytest.skip(why_not)
    with Topology(2) as lan:
        a0 = lan.spawn(0, PEER, lan.addresses[0], "51350", "a0")
        a1 = lan.spawn(0, PEER, lan.addresses[0], "51350", "a1")
        b = lan.spawn(1, PEER, lan.addresses[1], "51350", "b")
        ports = {
            name: process.expect(rf"^READY {name} \S+:(\d+)$", timeout=TIMEOUT)[1]
            for process, name in ((a0, "a0"), (a1, "a1"), (b, "b"))
        }
        a0.expect_all(r"^ONLINE a1 ", r"^ONLINE b ", timeout=TIMEOUT)
        a1.expect_all(r"^ONLINE a0 ", r"^ONLINE b ", timeout=TIMEOUT)
        b.expect_all(r"^ONLINE a0 ", r"^ONLINE a1 ", timeout=TIMEOUT)
        for process in (a0, a1, b):
            process.write("LINKS")
        a0_port, a1_port = ports["a0"], ports["a1"]
        same, other = lan.addresses
        a0.expect_all(
            rf"^LINK {same}:{a1_port} AF_UNIX$", rf"^LINK {other}:\d+ AF_INET$", timeout=TIMEOUT
        )
        a1.expect_all(
            rf"^LINK {same}:{a0_port} AF_UNIX$", rf"^LINK {other}:\d+ AF_INET$", timeout=TIMEOUT
        )
        b.expect_all(
            rf"^LINK {same}:{a0_port} AF_INET$",
            rf"^LINK {same}:{a1_port} AF_INET$",
            timeout=TIMEOUT,
        )


# argv: TCP port. Serves a coroutine "sink" that acknowledges what it gets.
TARGET = """
import sys
import discoro
kernel = discoro.AsynCoro(node="127.0.0.1", tcp_port=int(sys.argv[1]), name="target",
                          discover=False)

def sink(coro=None):
    coro.register("sink")
    while True:
        sender, text = yield coro.receive()
        sender.send(("ack", text))

discoro.Coro(sink)
print("READY", kernel.location, flush=True)
sys.stdin.read()
"""

# argv: TCP port of the target. Dials it, sends one message, prints the family of the link.
DIALLER = (
    LINK_FAMILIES
    + """
import sys
import discoro
kernel = discoro.AsynCoro(node="127.0.0.1", name="dialler", discover=False)
where = discoro.Location("127.0.0.1", int(sys.argv[1]))

def main(coro=None):
    print("PEER", (yield kernel.peer(where)), flush=True)
    sink = yield discoro.Coro.locate("sink", where, timeout=10)
    sink.send((coro, "hello"))
    print("REPLY", (yield coro.receive(timeout=10)), flush=True)
    print("FAMILY", link_families().get(str(where)), flush=True)

discoro.Coro(main).value(60)
"""
)


class Squatter:
    """Holds the abstract name of the process that will listen at 127.0.0.1:``port`` and
    treats whoever connects as ``behaviour`` says (accepts at most a few, for at most
    ``TIMEOUT`` seconds)."""

    def __init__(self, port: int, behaviour: str) -> None:
        self.behaviour = behaviour
        self.accepted = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(local_links.abstract_name(Location("127.0.0.1", port)))
        self.sock.listen(8)
        self.sock.settimeout(TIMEOUT)
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for _ in range(4):
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.behaviour == "closes":
                conn.close()
            elif self.behaviour == "garbage":
                conn.sendall(os.urandom(4096))
                self.held.append(conn)
            else:  # silent
                self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(TIMEOUT)
        for conn in self.held:
            conn.close()


@needs_local_links
@pytest.mark.timeout(120)
@pytest.mark.parametrize("behaviour", ["closes", "garbage", "silent"])
def test_a_squatter_on_the_abstract_name_costs_a_fallback_to_tcp_not_service(
    cluster_secret: str, behaviour: str
) -> None:
    port = free_port()
    squatter = Squatter(port, behaviour)
    try:
        with PeerProcess(TARGET, str(port)) as target:
            target.expect(rf"^READY 127\.0\.0\.1:{port}$", timeout=TIMEOUT)
            with PeerProcess(DIALLER, str(port)) as dialler:
                dialler.expect(r"^PEER 0$", timeout=TIMEOUT)
                dialler.expect(r"^REPLY \('ack', 'hello'\)$", timeout=TIMEOUT)
                dialler.expect(r"^FAMILY AF_INET$", timeout=TIMEOUT)
                assert dialler.wait(TIMEOUT) == 0
            fallbacks = [line for line in dialler.output if "local link to" in line]
            assert len(fallbacks) == 1, dialler.output
            assert f"127.0.0.1:{port} failed" in fallbacks[0]
            # the target could not listen at its name, and said so once
            held = [line for line in target.output if "holds the local socket name" in line]
            assert len(held) == 1, target.output
    finally:
        squatter.close()
    assert squatter.accepted == 1  # remembered as TCP-only: the squatter was tried once


def test_switch_and_tls_turn_local_links_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(local_links.LOCAL_LINKS_ENV, raising=False)
    assert local_links.enabled(None)
    assert not local_links.enabled(object())  # a TLS context: TCP only
    monkeypatch.setenv(local_links.LOCAL_LINKS_ENV, "0")
    assert not local_links.enabled(None)
    assert local_links.abstract_name(Location("127.0.0.1", 9)) == "\0discoro/127.0.0.1:9"
