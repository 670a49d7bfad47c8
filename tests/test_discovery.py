"""Discovery on one host, with real processes and sockets on loopback (reference 2.5).

Each test uses a UDP port of its own, so its processes hear nobody else; they run
`PEER_PROGRAM` (see `netns`) with node 127.0.0.1 and the session's secret, and the tests wait
for the lines it prints. Raw UDP sockets play a listener that counts announcements and a
sender of bad datagrams.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import queue
import socket
import threading
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import msgpack
import pytest

from discoro.errors import ProtocolError
from discoro.wire.discovery import (
    Announcement,
    decode_announcement,
    discovery_keys,
)
from netns import PEER_PROGRAM
from procs import PeerProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

LOOPBACK_BROADCAST = "127.255.255.255"


class Peers:
    """Starts peer processes on loopback and stops them all at the end of the test."""

    def __init__(self) -> None:
        self.processes: list[PeerProcess] = []

    def start(self, name: str, udp_port: int, **options: Any) -> PeerProcess:
        process = PeerProcess(PEER_PROGRAM, "127.0.0.1", str(udp_port), name, json.dumps(options))
        self.processes.append(process)
        process.expect(rf"^READY {name} 127\.0\.0\.1:\d+$")
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
def peers(cluster_secret: str) -> Iterator[Peers]:
    started = Peers()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def port() -> int:
    return free_port(socket.SOCK_DGRAM)


class Listener:
    """A raw socket sharing the discovery port: it hears every broadcast announcement.

    It may also take unicast datagrams meant for a peer process (the port is shared), so
    tests close it before the processes need unicast.
    """

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.sock.bind(("", port))
        self.sock.settimeout(0.1)
        self.closing = threading.Event()
        self.datagrams: queue.Queue[bytes] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self.closing.is_set():
            with contextlib.suppress(TimeoutError):
                self.datagrams.put(self.sock.recv(2048))

    def wait_for(self, secret: str, name: str, count: int, timeout: float = 10) -> list[str]:
        """Wait for ``count`` announcements of ``name`` in the cluster of ``secret``; the
        names in all of that cluster's announcements heard until then."""
        keys, names = discovery_keys(secret.encode()), list[str]()
        deadline = time.monotonic() + timeout
        while names.count(name) < count:
            try:
                data = self.datagrams.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"heard {names}, not {count} x {name!r}") from None
            with contextlib.suppress(ProtocolError):
                names.append(decode_announcement(data, keys, time.time()).name)
        return names

    def close(self) -> None:
        self.closing.set()
        self._thread.join(2)
        self.sock.close()


def expect_peers(process: PeerProcess, state: str, *names: str, timeout: float = 10) -> None:
    process.expect_all(*(rf"^STATUS {state} {name} " for name in names), timeout=timeout)


def lines(process: PeerProcess, text: str) -> list[str]:
    return [line for line in process.output if text in line]


def test_two_processes_find_each_other(peers: Peers, port: int) -> None:
    a = peers.start("a", port)
    b = peers.start("b", port)
    expect_peers(a, "Online", "b")
    expect_peers(b, "Online", "a")


def test_every_process_on_the_host_learns_of_a_newcomer(peers: Peers, port: int) -> None:
    names = ["a", "b", "c"]
    old = [peers.start(name, port) for name in names]
    for name, process in zip(names, old, strict=True):
        expect_peers(process, "Online", *(other for other in names if other != name))
    newcomer = peers.start("n", port)
    expect_peers(newcomer, "Online", *names)
    for process in old:
        expect_peers(process, "Online", "n")
    assert not lines(newcomer, "Offline")


def test_introduction_by_udp_reaches_every_process_on_that_host(peers: Peers, port: int) -> None:
    other_port = free_port(socket.SOCK_DGRAM)
    s1, s2 = peers.start("s1", port), peers.start("s2", port)
    expect_peers(s1, "Online", "s2")
    newcomer = peers.start("n", other_port)  # its broadcasts reach nobody
    newcomer.write(f"PEER 127.0.0.1 {port}")
    newcomer.expect(r"^PEER 0$")
    # the unicast introduction reached one of s1 and s2, which relayed it to the other
    expect_peers(newcomer, "Online", "s1", "s2")
    expect_peers(s1, "Online", "n")
    expect_peers(s2, "Online", "n")


def test_peer_with_unresolvable_host_fails(peers: Peers, port: int) -> None:
    a = peers.start("a", port)
    a.write(f"PEER no-such-host.invalid {port}")
    a.expect(r"^PEER -1$")


def test_process_of_another_cluster_is_ignored(peers: Peers, port: int) -> None:
    a = peers.start("a", port)
    listener = Listener(port)
    try:
        peers.start("x", port, secret="another secret")
        listener.wait_for("another secret", "x", count=3)  # all of x's announcements
    finally:
        listener.close()
    # a hears b only after x's last announcement (one socket queue, in order)
    peers.start("b", port)
    expect_peers(a, "Online", "b")
    assert len(lines(a, "another cluster")) == 1, a.output
    assert not lines(a, " x "), a.output


def _datagram(secret: str = "another secret", **changes: Any) -> bytes:
    """A datagram signed with the keys of ``secret`` (another cluster's, unless told)."""
    keys = discovery_keys(secret.encode())
    fake = Announcement(
        tag=keys.tag, name="fake", addr="127.0.0.1", port=9, udp_port=9, sid="f", time=time.time()
    )
    signed = b"DSCV" + msgpack.packb({**asdict(fake), **changes}, use_bin_type=True)
    return signed + hmac.digest(keys.mac_key, signed, "sha256")


def test_bad_datagrams_are_logged_once_and_ignored(
    peers: Peers, port: int, cluster_secret: str
) -> None:
    a, b = peers.start("a", port), peers.start("b", port)
    expect_peers(b, "Online", "a")
    ours = cluster_secret
    bad = [
        b"hello",  # not ours at all
        b"DSCV\xc1\xff",  # our magic, broken msgpack
        _datagram(ours, port="nine"),  # a field of the wrong type
        _datagram(ours, addr="example.com"),  # not an address: never looked up
        _datagram(ours, addr="255.255.255.255"),  # nothing listens there
        _datagram(),  # another cluster
        _datagram(ours, version=999),  # another protocol version
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for data in bad * 2:
            sender.sendto(data, (LOOPBACK_BROADCAST, port))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as marker:
        marker.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        marker.bind(("127.0.0.2", 0))
        marker.sendto(b"marker", (LOOPBACK_BROADCAST, port))
    # datagrams from one socket are handled in order: the marker's line comes last
    a.expect(r"ignoring discovery datagrams from 127\.0\.0\.2: ")
    from_us = lines(a, "ignoring discovery datagrams from 127.0.0.1: ")
    assert len(from_us) == 3, a.output  # malformed, another cluster, another version
    assert len([line for line in from_us if "another cluster" in line]) == 1
    assert len([line for line in from_us if "version 999" in line]) == 1
    b.write("LOCATE service-a")
    b.expect(r"^LOCATED service-a True$")
    assert a.proc.poll() is None
    assert not lines(a, "Traceback")


def test_discover_false_sends_nothing(peers: Peers, port: int, cluster_secret: str) -> None:
    listener = Listener(port)
    try:
        quiet = peers.start("q", port, discover=False)
        peers.start("s", port)  # announces itself after q would have
        assert listener.wait_for(cluster_secret, "s", count=1) == ["s"]
    finally:
        listener.close()
    quiet.write(f"PEER 127.0.0.1 {port}")
    quiet.expect(r"^PEER -1$")
