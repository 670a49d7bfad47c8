"""Attacks on live links, with real discoro processes and a relay that does not know the
secret: it forwards a handshake and injects a frame (a pickle that would create a marker
file), or flips a bit in, replays or drops one record of a live link. Each time the attacked
link closes with one log line, nothing in the bad record is delivered (let alone unpickled),
and both processes go on serving. Also: a peer of the previous protocol version is refused
with a clear line."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import pytest

from discoro.wire.frames import FrameDecoder, encode_frame
from discoro.wire.handshake import PROTOCOL_VERSION, Handshake, Role
from discoro.wire.identity import Identity, new_sid
from discoro.wire.keys import stretch
from discoro.wire.record import HEADER, TAG_SIZE
from linkrelay import Relay
from procs import PeerProcess, free_port
from test_net_bad_input import bomb_bytes, read_until_closed

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

TIMEOUT = 15.0

VICTIM = """
import sys
import discoro
ext = sys.argv[1] if len(sys.argv) > 1 else None
kernel = discoro.AsynCoro(node="127.0.0.1", ext_ip_addr=ext, name="victim", discover=False)

def sink(coro=None):
    coro.register("sink")
    while True:
        sender, n, pad = yield coro.receive()
        print("GOT", n, flush=True)
        sender.send(("ack", n))

sink_coro = discoro.Coro(sink)
print("READY", kernel.location.addr, kernel.location.port, sink_coro._id, flush=True)
sys.stdin.read()
"""

DIALLER = """
import sys
import discoro
kernel = discoro.AsynCoro(node="127.0.0.1", name="dialler", discover=False)

def main(coro=None):
    for line in iter(sys.stdin.readline, ""):
        words = line.split()
        where = discoro.Location(words[1], int(words[2]))
        if words[0] == "dial":
            result = yield kernel.peer(where)
            print("PEER", result, flush=True)
        elif words[0] == "send":  # send N messages of 1000 bytes, each awaiting its ack
            sink = yield discoro.Coro.locate("sink", where, timeout=10)
            for n in range(int(words[3])):
                sink.send((coro, words[4] + str(n), "x" * 1000))
                reply = yield coro.receive(timeout=3)
                print("ACK" if reply else "NOACK", words[4] + str(n), flush=True)

discoro.Coro(main)
print("READY", flush=True)
"""


@pytest.fixture
def victim(cluster_secret: str) -> Iterator[tuple[PeerProcess, int, int]]:
    with PeerProcess(VICTIM) as proc:
        match = proc.expect(r"^READY 127\.0\.0\.1 (\d+) (\d+)$", timeout=TIMEOUT)
        yield proc, int(match[1]), int(match[2])


@pytest.fixture
def dialler(cluster_secret: str) -> Iterator[PeerProcess]:
    with PeerProcess(DIALLER) as proc:
        proc.expect(r"^READY$", timeout=TIMEOUT)
        yield proc


def lines(proc: PeerProcess, pattern: str) -> list[str]:
    import re

    return [line for line in proc.output if re.search(pattern, line)]


def assert_serving(dialler: PeerProcess, port: int, tag: str) -> None:
    """The dialler reaches the victim's sink directly, and the sink answers."""
    dialler.write(f"dial 127.0.0.1 {port}")
    dialler.expect(r"^PEER 0$", timeout=TIMEOUT)
    dialler.write(f"send 127.0.0.1 {port} 1 {tag}")
    dialler.expect(rf"^ACK {tag}0$", timeout=TIMEOUT)


INJECTIONS = {
    "plain frame with a pickle": lambda sink, marker: encode_frame(
        {"op": "send", "f": {"c": sink}}, bomb_bytes(marker)
    ),
    "forged record": lambda sink, marker: (
        HEADER.pack(200 + TAG_SIZE) + encode_frame({"op": "send", "f": {"c": sink}}, b"p" * 178)
    )[: HEADER.size + 200 + TAG_SIZE].ljust(HEADER.size + 200 + TAG_SIZE, b"\0"),
}


@pytest.mark.parametrize("injection", sorted(INJECTIONS))
def test_relayed_handshake_then_injected_frame_runs_nothing(
    victim: tuple[PeerProcess, int, int], dialler: PeerProcess, tmp_path: Path, injection: str
) -> None:
    proc, port, sink = victim
    marker = tmp_path / "pwned"
    relay = Relay(("127.0.0.1", 0), ("127.0.0.1", port), inject=INJECTIONS[injection](sink, marker))
    try:
        dialler.write(f"dial 127.0.0.1 {relay.address[1]}")
        # The victim took the relayed handshake, then refused what the relay added after it.
        expected = "bad record header" if "plain" in injection else "record 0 failed authentic"
        proc.expect(rf"dropped connection with 127\.0\.0\.1:\d+ \(peer .*\): {expected}")
        # The dialler refused the link: the peer is not at the address it dialled.
        dialler.expect(
            rf"refused connection with 127\.0\.0\.1:{relay.address[1]}: it authenticated as "
            rf"victim at 127\.0\.0\.1:{port}, not as the address dialled",
            timeout=TIMEOUT,
        )
        dialler.expect(r"^PEER -1$", timeout=TIMEOUT)
        assert_serving(dialler, port, "after")
    finally:
        relay.close()
    assert not marker.exists()
    proc.expect(r"^GOT after0$")  # the victim's own line (read by another thread)
    assert lines(proc, "GOT") == ["GOT after0"]
    assert len(lines(proc, "dropped connection")) == 1


def nth_message_record(n: int, act: Callable[[bytes], bytes]) -> Callable[[int, bytes], bytes]:
    """A tamper function: ``act`` on the n-th record that carries a 1000-byte message."""
    seen = [0]

    def tamper(index: int, record: bytes) -> bytes:
        if len(record) < 1000:
            return record  # locate, replies, pings
        seen[0] += 1
        return act(record) if seen[0] == n + 1 else record

    return tamper


def flip(record: bytes) -> bytes:
    middle = len(record) // 2
    return record[:middle] + bytes([record[middle] ^ 0x10]) + record[middle + 1 :]


TAMPERING: dict[str, tuple[Callable[[bytes], bytes], list[str]]] = {
    # what is done to the record of the second message (m1); what must never be delivered.
    # The dialler sends m0, m1, m2, each after the previous one's ack (or 3 s without it).
    "flipped bit": (flip, ["GOT m1"]),
    "replayed record": (lambda record: record + record, []),  # and m1 exactly once
    # a dropped record is noticed at the next record (a ping within a second, or m2)
    "dropped record": (lambda record: b"", ["GOT m1"]),
}


@pytest.mark.parametrize("attack", sorted(TAMPERING))
def test_tampered_record_on_a_live_link_closes_it_and_delivers_nothing_of_it(
    cluster_secret: str, dialler: PeerProcess, attack: str
) -> None:
    # The victim announces 127.0.0.2:P (ext_ip_addr) and listens at 127.0.0.1:P; the relay
    # sits at 127.0.0.2:P, so the dialler's link through it is a legitimate one. The victim
    # has no same-host Unix socket (`net.local_links`), else the dialler would go there.
    port = free_port()
    act, never = TAMPERING[attack]
    with PeerProcess(
        VICTIM.replace('node="127.0.0.1"', f'node="127.0.0.1", tcp_port={port}'),
        "127.0.0.2",
        env={"DISCORO_LOCAL_LINKS": "0"},
    ) as proc:
        proc.expect(rf"^READY 127\.0\.0\.2 {port} \d+$", timeout=TIMEOUT)
        relay = Relay(("127.0.0.2", port), ("127.0.0.1", port), tamper=nth_message_record(1, act))
        try:
            dialler.write(f"dial 127.0.0.2 {port}")
            dialler.expect(r"^PEER 0$", timeout=TIMEOUT)
            dialler.write(f"send 127.0.0.2 {port} 3 m")
            proc.expect(r"dropped connection with .*: record \d+ failed authentication")
            # Both go on: the dialler re-dials (through the relay, untouched now) and sends.
            dialler.expect(r"^(NO)?ACK m2$", timeout=TIMEOUT)
            dialler.write(f"send 127.0.0.2 {port} 1 again")
            dialler.expect(r"^ACK again0$", timeout=TIMEOUT)
            proc.expect(r"^GOT again0$")
        finally:
            relay.close()
        got = lines(proc, "GOT")
        assert got[0] == "GOT m0" and got.count("GOT m1") <= 1
        assert [line for line in got if line in never] == []
        assert len(lines(proc, "dropped connection")) == 1


def test_a_peer_of_the_previous_protocol_version_is_refused_with_a_clear_line(
    victim: tuple[PeerProcess, int, int], cluster_secret: str
) -> None:
    proc, port, _ = victim
    old = Handshake(
        Role.CLIENT,
        stretch(cluster_secret.encode()),
        Identity("old", "127.0.0.1", 1, new_sid()),
        version=1,
    )
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"".join(encode_frame(control) for control in old.start()))
        answer = read_until_closed(sock)
    decoder = FrameDecoder()
    decoder.feed(answer)
    refusal: Any = decoder.next_frame()
    assert refusal.control["op"] == "refuse" and refusal.control["kind"] == "version"
    proc.expect(
        r"refused connection with 127\.0\.0\.1:\d+: peer speaks discoro protocol version 1, "
        rf"we speak {PROTOCOL_VERSION}"
    )
