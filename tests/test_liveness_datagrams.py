"""Only a peer's own, fresh, signed liveness datagrams keep its link alive (`net.liveness`).

A watcher process links to a victim process, which is then stopped (SIGSTOP): its link goes
silent. While the test sends the watcher liveness datagrams in the victim's name, the link
lives only if they are genuine: forged ones (another key), stale ones (outside the replay
window) and copies of one genuine datagram do not keep a stopped process online, and each
kind is logged; fresh genuine ones do, until they stop.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from typing import TYPE_CHECKING

import pytest

from discoro.wire.keys import stretch
from discoro.wire.liveness import LivenessNote, encode_liveness, liveness_key
from procs import PeerProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

PROGRAM = """
import sys
from discoro import AsynCoro, Coro, Location, PeerStatus

kernel = AsynCoro(node="127.0.0.1", udp_port=int(sys.argv[1]), discover=False)
print("READY", kernel.location, kernel.network().sid, flush=True)


def watch(coro=None):
    kernel.peer_status(coro)
    while True:
        status = yield coro.receive()
        state = "Online" if status.status == PeerStatus.Online else "Offline"
        print("STATUS", state, status.location, flush=True)


def dial(addr, port, coro=None):
    result = yield kernel.peer(Location(addr, int(port)))
    print("DIALED", result, flush=True)


Coro(watch)
for line in sys.stdin:
    verb, *words = line.split()
    if verb == "DIAL":
        Coro(dial, *words)
"""

Pair = tuple[PeerProcess, str, int, str]  # watcher, victim's address, port and sid


@pytest.fixture
def stopped_peer(cluster_secret: str, udp_port: int) -> Iterator[Pair]:
    """A watcher linked to a victim that is then stopped."""
    with (
        PeerProcess(PROGRAM, str(udp_port)) as watcher,
        PeerProcess(PROGRAM, str(udp_port)) as victim,
    ):
        watcher.expect(r"^READY ")
        addr, port, sid = victim.expect(r"^READY (\S+):(\d+) (\S+)$").groups()
        watcher.write(f"DIAL {addr} {port}")
        watcher.expect_all(r"^DIALED 0$", rf"^STATUS Online {re.escape(addr)}:{port}$")
        os.kill(victim.proc.pid, signal.SIGSTOP)
        try:
            yield watcher, addr, int(port), sid
        finally:
            os.kill(victim.proc.pid, signal.SIGKILL)


def send_for(seconds: float, watcher: PeerProcess, make: Callable[[], list[bytes]]) -> bool:
    """Send ``make()``'s datagrams to the watcher's liveness port every 0.5 s for
    ``seconds`` (bounded); whether the watcher still had its peer online at the end."""
    ready = next(line for line in watcher.output if line.startswith("READY "))
    port = int(ready.split()[1].rsplit(":", 1)[1])  # its TCP port's number
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for data in make():
                sock.sendto(data, ("127.0.0.1", port))
            if any(line.startswith("STATUS Offline") for line in watcher.output):
                return False
            time.sleep(0.5)  # the sending rate, not a synchronisation
    return not any(line.startswith("STATUS Offline") for line in watcher.output)


def note(addr: str, port: int, sid: str, made: float | None = None) -> LivenessNote:
    stamp = time.time() if made is None else made
    return LivenessNote("alive", stamp, sid, addr, port, 99999, stuck=30.0)


@pytest.mark.timeout(60)
def test_forged_stale_and_copied_datagrams_keep_nothing_alive(
    stopped_peer: Pair, cluster_secret: str
) -> None:
    watcher, addr, port, sid = stopped_peer
    key = liveness_key(stretch(cluster_secret.encode()))
    copied = encode_liveness(note(addr, port, sid), key)  # taken once, then only copies

    def bad() -> list[bytes]:
        return [
            encode_liveness(note(addr, port, sid), liveness_key(stretch(b"not the secret"))),
            encode_liveness(note(addr, port, sid, made=time.time() - 60), key),
            copied,
        ]

    assert not send_for(30, watcher, bad), "a stopped peer stayed online:\n" + "\n".join(
        watcher.output
    )
    text = "\n".join(watcher.output)
    assert "wrong MAC" in text and "from our clock" in text and "copy of a liveness" in text


@pytest.mark.timeout(60)
def test_genuine_datagrams_keep_a_busy_peer_online(stopped_peer: Pair, cluster_secret: str) -> None:
    watcher, addr, port, sid = stopped_peer
    key = liveness_key(stretch(cluster_secret.encode()))
    assert send_for(14, watcher, lambda: [encode_liveness(note(addr, port, sid), key)]), "\n".join(
        watcher.output
    )
    watcher.expect(rf"^STATUS Offline {re.escape(addr)}:{port}$", timeout=25)  # they stopped
