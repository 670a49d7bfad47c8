"""Forged and replayed discovery announcements against a real process (issue 8).

The victim runs `PEER_PROGRAM` on loopback with its own discovery port. Honeypots are TCP
listeners on 127.0.0.1 that count the connections they get: the addresses an attacker would
make the victim dial. The attacker copies a real announcement it sniffed (the victim's own)
and edits it to point at a honeypot; it cannot sign it, since it does not know the secret.
Every attack ends with a positive control: an announcement signed with the cluster's key
(as a legitimate member would send) that points at a second honeypot, sent after the attack
(and again until it is dialled, should the flood have overrun the victim's socket buffer).
The victim handles datagrams in order and dials at once, so once the control honeypot is
dialled, any dial the attack caused has been made too; and the control shows that the
victim does dial announcements it should.
"""

from __future__ import annotations

import hmac
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import msgpack
import pytest

from discoro.wire.discovery import (
    MAC_SIZE,
    REPLAY_WINDOW,
    Announcement,
    discovery_keys,
    encode_announcement,
)
from netns import PEER_PROGRAM
from procs import PeerProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

LOOPBACK_BROADCAST = "127.255.255.255"
TIMEOUT = 10.0
BIG_SID = "zzzzzzzzzzzzzzzz"  # above every hex sid: the victim is the one that dials


class Honeypot:
    """A TCP listener on 127.0.0.1 that counts (and at once closes) connections to it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.count = 0
        self.dialled = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.close()
            self.count += 1
            self.dialled.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def honeypots() -> Iterator[tuple[Honeypot, Honeypot]]:
    target, control = Honeypot(), Honeypot()
    try:
        yield target, control
    finally:
        target.close()
        control.close()


def sniff_victim(port: int) -> tuple[PeerProcess, bytes]:
    """Start the victim on discovery ``port``; it and one announcement it broadcast."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sniffer:
        sniffer.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sniffer.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sniffer.bind(("", port))
        sniffer.settimeout(TIMEOUT)
        victim = PeerProcess(PEER_PROGRAM, "127.0.0.1", str(port), "victim", "{}")
        try:
            victim.expect(r"^READY victim ", timeout=TIMEOUT)
            return victim, sniffer.recv(2048)
        except BaseException:
            victim.stop()
            raise


def edit(sniffed: bytes, **changes: Any) -> bytes:
    """``sniffed`` with fields changed and its MAC kept (all an attacker can do)."""
    values = msgpack.unpackb(sniffed[4:-MAC_SIZE], raw=False)
    values.update(changes)
    return b"DSCV" + msgpack.packb(values, use_bin_type=True) + sniffed[-MAC_SIZE:]


def signed(secret: str, honeypot: Honeypot, name: str, at: float, sid: str = BIG_SID) -> bytes:
    """An announcement signed with the cluster's key (a member's, or a capture of one)."""
    keys = discovery_keys(secret.encode())
    announcement = Announcement(
        tag=keys.tag,
        name=name,
        addr="127.0.0.1",
        port=honeypot.port,
        udp_port=9,
        sid=sid,
        time=at,
    )
    return encode_announcement(announcement, keys.mac_key)


def send_all(port: int, datagrams: list[bytes]) -> None:
    """Broadcast ``datagrams`` on loopback in order, from one socket, paced so the victim's
    socket buffer is not overrun (bounded: one pass, about 1 ms per 10 datagrams)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for index, data in enumerate(datagrams):
            sender.sendto(data, (LOOPBACK_BROADCAST, port))
            if index % 10 == 9:
                time.sleep(0.001)


def control_dialled(port: int, secret: str, control: Honeypot, name: str = "control") -> bool:
    """Send the control announcement (signed afresh each time, so never a duplicate) until
    the victim dials it: a copy can be lost if the attack overran the victim's socket
    buffer. Bounded: at most 50 sends in about 10 s."""
    for _ in range(50):
        send_all(port, [signed(secret, control, name, time.time())])
        if control.dialled.wait(0.2):
            return True
    return False


def lines(process: PeerProcess, text: str) -> list[str]:
    return [line for line in process.output if text in line]


@pytest.mark.timeout(90)
def test_forged_announcements_cause_no_connection(
    cluster_secret: str, honeypots: tuple[Honeypot, Honeypot]
) -> None:
    target, control = honeypots
    port = free_port(socket.SOCK_DGRAM)
    victim, sniffed = sniff_victim(port)
    try:
        keys = discovery_keys(b"a guess at the secret")
        forged = []
        for index in range(2000):
            changes = {
                "addr": "127.0.0.1",
                "port": target.port,
                "sid": f"{BIG_SID}{index}",
                "name": f"forged-{index}",
                "time": time.time(),
            }
            data = edit(sniffed, **changes)
            if index % 2:  # or signed with a key of the attacker's own
                data = data[:-MAC_SIZE] + hmac.digest(keys.mac_key, data[:-MAC_SIZE], "sha256")
            forged.append(data)
        # also the sniffed datagram itself, replayed unchanged, and edited to relay
        forged += [sniffed] * 20 + [edit(sniffed, relay=True, rebroadcast=True)] * 20
        send_all(port, forged)
        assert control_dialled(port, cluster_secret, control), victim.output
        assert target.count == 0
        forged_lines = lines(victim, "wrong MAC")
        assert len(forged_lines) == 1, victim.output  # logged once for the sender
        assert len(victim.output) < 30, victim.output
        assert not lines(victim, "Traceback")
    finally:
        victim.stop()


@pytest.mark.timeout(60)
def test_replayed_announcements_cause_at_most_one_connection(
    cluster_secret: str, honeypots: tuple[Honeypot, Honeypot]
) -> None:
    target, control = honeypots
    port = free_port(socket.SOCK_DGRAM)
    victim, _ = sniff_victim(port)
    try:
        # captured a minute ago: outside the window, never dialled however often replayed
        stale = signed(cluster_secret, target, "stale", time.time() - 3 * REPLAY_WINDOW)
        future = signed(cluster_secret, target, "future", time.time() + 3 * REPLAY_WINDOW)
        # captured just now: the first copy is news, the replays are duplicates
        fresh = signed(cluster_secret, target, "fresh", time.time())
        send_all(port, [stale] * 50 + [future] * 50 + [fresh] * 200)
        assert control_dialled(port, cluster_secret, control), victim.output
        assert target.count == 1, victim.output
        assert len(lines(victim, "a replay, or clocks out of step")) == 1, victim.output
        # the fresh one failed to connect (the honeypot hangs up): it is backed off
        victim.expect(r"cannot connect to 127\.0\.0\.1:\d+ .*leaving it alone for 1 s")
        assert not lines(victim, "Traceback")
    finally:
        victim.stop()
