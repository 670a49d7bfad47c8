"""Hostile and broken input against a real discoro process (DESIGN decisions 3 and 4).

A child process listens on 127.0.0.1 with a registered ``echo`` coroutine. Raw sockets send
it garbage, truncated and oversize frames, pickles that would create a marker file if they
were ever unpickled, a replayed handshake, and a process with another secret tries to pair
with it. For each: exactly one clear log line in the child's output, no code run, and the
child keeps serving: a fresh authenticated connection and the test's own discoro kernel can
still locate ``echo`` and get an answer from it.

Wire-level clients here drive `discoro.wire.Connection` over a blocking socket: a real client
of the protocol, which also lets the tests record what a client sends.
"""

from __future__ import annotations

import pathlib
import pickle
import re
import socket
import struct
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from discoro import AsynCoro, Coro, Location
from discoro.wire import (
    NEED_DATA,
    Connection,
    Event,
    HandshakeComplete,
    Identity,
    Message,
    MessageReceived,
    Role,
    encode_frame,
    new_sid,
)
from discoro.wire.frames import HAS_PAYLOAD, HEADER, MAGIC
from discoro.wire.keys import stretch
from discoro.wire.messages import trusted_message
from discoro.wire.record import LANE_DATA
from procs import PeerProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

HANDSHAKE_TIMEOUT = 1.0  # the child's, lowered from 5 s so the timeout test is quick
TIMEOUT = 10.0

SERVER = """
import sys
import discoro
import discoro.net.link
discoro.net.link.HANDSHAKE_TIMEOUT = float(sys.argv[2])
kernel = discoro.AsynCoro(node="127.0.0.1", tcp_port=int(sys.argv[1]), name="victim",
                          discover=False)

def echo(coro=None):
    coro.register("echo")
    while True:
        msg = yield coro.receive()
        if isinstance(msg, tuple) and len(msg) == 2:
            print("ECHO", msg[1], flush=True)
            msg[0].send(("echoed", msg[1]))
        else:
            print("ECHO", repr(msg), flush=True)

discoro.Coro(echo)
print("READY", kernel.location, flush=True)
sys.stdin.read()
"""

WRONG_SECRET_PEER = """
import sys
import discoro
kernel = discoro.AsynCoro(node="127.0.0.1", name="intruder", discover=False)

def main(coro=None):
    result = yield kernel.peer(discoro.Location("127.0.0.1", int(sys.argv[1])))
    print("PEER", result, flush=True)

discoro.Coro(main).value(30)
"""


class Bomb:
    """Unpickling it creates ``path``: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(cluster_secret: str) -> Iterator[tuple[PeerProcess, int]]:
    port = free_port()
    with PeerProcess(SERVER, str(port), str(HANDSHAKE_TIMEOUT)) as proc:
        proc.expect(r"^READY 127\.0\.0\.1:\d+", timeout=TIMEOUT)
        yield proc, port


class WireClient:
    """An authenticated discoro client over a plain blocking socket; records what it sends."""

    def __init__(self, port: int, secret: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Port 1 never listens: should the server re-dial us, it fails at once.
        identity = Identity("wire-client", "127.0.0.1", 1, new_sid())
        self.conn = Connection(Role.CLIENT, stretch(secret.encode()), identity)
        self.sent = bytearray()
        self._rid = 100

    @property
    def local_port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _write(self, data: bytes) -> None:
        self.sent += data
        self.sock.sendall(data)

    def next_event(self) -> Event:
        while True:
            event = self.conn.next_event()
            out = self.conn.data_to_send()
            if out:
                self._write(out)
            if event is not NEED_DATA:
                return event
            self.conn.receive_data(self.sock.recv(65536))

    def handshake(self) -> Identity:
        self.conn.start()
        self._write(self.conn.data_to_send())
        event = self.next_event()
        assert isinstance(event, HandshakeComplete), event
        return event.peer

    def send(self, message: Message) -> None:
        self._write(self.conn.send(message))

    def request(self, op: str, fields: dict[str, Any], payload: bytes | None = None) -> Message:
        self._rid += 1
        # trusted_message: ops this version does not know too (as a newer peer could send)
        self.send(trusted_message(op, self._rid, fields, payload))
        while True:
            event = self.next_event()
            assert isinstance(event, MessageReceived), event
            if event.message.op == "reply" and event.message.rid == self._rid:
                return event.message

    def close(self) -> None:
        self.send(Message("peer_closed"))
        self.sock.close()


def raw_exchange(port: int, data: bytes, shut_write: bool = False) -> bytes:
    """Send ``data`` on a fresh connection; everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        if shut_write:
            sock.shutdown(socket.SHUT_WR)
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def lines_about(proc: PeerProcess, client_port: int) -> list[str]:
    about = re.compile(rf"127\.0\.0\.1:{client_port}\b")
    return [line for line in proc.output if about.search(line)]


def assert_one_line(proc: PeerProcess, port: int, client_port: int, kind: str, why: str) -> None:
    """The server logged one line about this client connection: ``kind`` ("refused" or
    "dropped") and a reason matching ``why``."""
    proc.expect(rf"{kind} connection with 127\.0\.0\.1:{client_port}\b.*{why}", timeout=TIMEOUT)
    assert_still_serving(proc, port)  # also orders: any later line about it would be out by now
    lines = lines_about(proc, client_port)
    assert len(lines) == 1, lines


_checks = iter(range(1, 1_000_000))


def assert_still_serving(proc: PeerProcess, port: int) -> None:
    """A fresh wire-level connection and this process's kernel both reach ``echo``."""
    client = WireClient(port, _secret())
    client.handshake()
    reply = client.request("locate", {"k": "coro", "n": "echo"})
    assert reply.fields["r"] == 0
    client.close()

    n = next(_checks)

    def check(coro: Any = None) -> Any:
        echo = yield Coro.locate("echo", Location("127.0.0.1", port), timeout=TIMEOUT)
        if echo is None:
            return "echo not found"
        echo.send((coro, f"check-{n}"))
        return (yield coro.receive(timeout=TIMEOUT))

    assert Coro(check).value(TIMEOUT * 2) == ("echoed", f"check-{n}")
    proc.expect(rf"^ECHO check-{n}$", timeout=TIMEOUT)


def _secret() -> str:
    import os

    return os.environ["DISCORO_SECRET"]


@pytest.fixture
def victim(server: tuple[PeerProcess, int], net_kernel: AsynCoro) -> tuple[PeerProcess, int]:
    return server


def bomb_bytes(marker: Path) -> bytes:
    return pickle.dumps(Bomb(marker), protocol=pickle.HIGHEST_PROTOCOL)


def test_bomb_is_real(tmp_path: Path) -> None:
    """The payloads below would create their marker file if anyone unpickled them."""
    marker = tmp_path / "proof"
    pickle.loads(bomb_bytes(marker))
    assert marker.exists()


# -- before authentication -----------------------------------------------------------------


def test_garbage_bytes(victim: tuple[PeerProcess, int]) -> None:
    proc, port = victim
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(MAGIC)  # a REFUSE frame that says why
    assert b"bad frame magic" in answer
    assert_one_line(proc, port, client_port, "refused", r"bad frame magic b'GE'")


def test_truncated_frame_then_eof(victim: tuple[PeerProcess, int]) -> None:
    proc, port = victim
    frame = encode_frame({"op": "hello", "body": b"x" * 50})
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(frame[: len(frame) // 2])
        sock.shutdown(socket.SHUT_WR)
        read_until_closed(sock)
    assert_one_line(proc, port, client_port, "refused", r"closed mid-frame")


def test_oversize_length_refused_from_the_header(victim: tuple[PeerProcess, int]) -> None:
    proc, port = victim
    header = HEADER.pack(MAGIC, 1, 0, 0x7FFF_FFFF, 0)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(header)  # nothing more: refused from the header alone
        answer = read_until_closed(sock)
    assert b"exceeds limit" in answer
    assert_one_line(proc, port, client_port, "refused", r"exceeds limit 4096")


@pytest.mark.parametrize("how", ["raw pickle", "payload frame", "inside a hello"])
def test_pickle_before_authentication_is_never_unpickled(
    victim: tuple[PeerProcess, int], tmp_path: Path, how: str
) -> None:
    proc, port = victim
    marker = tmp_path / "pwned"
    bomb = bomb_bytes(marker)
    if how == "raw pickle":
        data, reason = bomb, "bad frame magic"
    elif how == "payload frame":
        control = encode_frame({"op": "send", "f": {"c": 1}})[HEADER.size :]
        data = HEADER.pack(MAGIC, 1, HAS_PAYLOAD, len(control), len(bomb)) + control + bomb
        reason = "payload before authentication"
    else:
        data, reason = encode_frame({"op": "hello", "body": bomb}), "malformed handshake"
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(data)
        read_until_closed(sock)
    assert_one_line(proc, port, client_port, "refused", reason)
    assert not marker.exists()


def test_connection_without_handshake_is_dropped_after_the_timeout(
    victim: tuple[PeerProcess, int],
) -> None:
    proc, port = victim
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        client_port = sock.getsockname()[1]
        start = time.monotonic()
        sock.sendall(MAGIC[:1])  # a slow trickle does not extend the deadline
        read_until_closed(sock)
        waited = time.monotonic() - start
    assert HANDSHAKE_TIMEOUT * 0.8 <= waited < TIMEOUT
    assert_one_line(proc, port, client_port, "dropped", r"no handshake within")


def test_replayed_handshake_is_refused(victim: tuple[PeerProcess, int]) -> None:
    proc, port = victim
    original = WireClient(port, _secret())
    original.handshake()
    recorded = bytes(original.sent)  # HELLO + AUTH of a successful handshake
    original.close()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(recorded)
        answer = read_until_closed(sock)
    assert b"authentication failed" in answer  # the server's REFUSE
    assert_one_line(proc, port, client_port, "refused", r"failed authentication")


def test_peer_with_another_secret_never_pairs(victim: tuple[PeerProcess, int]) -> None:
    proc, port = victim
    before = sum("authentication" in line for line in proc.output)
    # over TCP only: with same-host links it would try the victim's Unix socket first, then
    # TCP (`net.local_links`), and be refused twice, with one line each time
    wrong = {"DISCORO_SECRET": "not-the-secret", "DISCORO_LOCAL_LINKS": "0"}
    with PeerProcess(WRONG_SECRET_PEER, str(port), env=wrong) as p:
        p.expect(r"^PEER -1$", timeout=TIMEOUT)
        assert p.wait(TIMEOUT) == 0
    proc.expect(r"refused connection with 127\.0\.0\.1:\d+: .*authentication failed")
    assert_still_serving(proc, port)
    assert sum("authentication" in line for line in proc.output) == before + 1
    assert not any("ECHO" in line and "intruder" in line for line in proc.output)


# -- after authentication --------------------------------------------------------------------


def test_oversize_frame_after_authentication_drops_only_that_link(
    victim: tuple[PeerProcess, int],
) -> None:
    proc, port = victim
    client = WireClient(port, _secret())
    client.handshake()
    client_port = client.local_port
    control = encode_frame({"op": "send"})[HEADER.size :]
    header = HEADER.pack(MAGIC, 1, HAS_PAYLOAD, len(control), 0xFFFF_FF00)
    writer = client.conn._writer  # sealed as a record, so it reaches the frame decoder
    assert writer is not None
    writer.add(LANE_DATA, [header + control])
    client.sock.sendall(bytes(client.conn.seal() or b""))
    read_until_closed(client.sock)
    client.sock.close()
    assert_one_line(proc, port, client_port, "dropped", r"exceeds limit")


def test_unknown_coroutine_unknown_op_and_bad_fields_keep_the_link(
    victim: tuple[PeerProcess, int], tmp_path: Path
) -> None:
    proc, port = victim
    marker = tmp_path / "pwned"
    client = WireClient(port, _secret())
    client.handshake()
    # A payload for a coroutine that does not exist is not even unpickled.
    client.send(Message("send", 0, {"c": 987_654_321}, bomb_bytes(marker)))
    assert client.request("deliver", {"c": 987_654_321}, pickle.dumps("x")).fields["r"] == -1
    # An op this version does not know: an error reply, one log line, the link goes on.
    reply = client.request("frobnicate", {})
    assert reply.fields["r"] == -1 and "unsupported op" in reply.fields["e"]
    proc.expect(r"sent 'frobnicate', which this process does not handle")
    # A field of the wrong type: that message is refused, the link goes on.
    assert client.request("deliver", {"c": [1, 2]}, pickle.dumps("x")).fields["r"] == -1
    proc.expect(r"cannot handle 'deliver' from")
    # ... and the same link still reaches echo.
    found = client.request("locate", {"k": "coro", "n": "echo"})
    assert found.fields["r"] == 0
    echo = pickle.loads(found.payload or b"")
    result = client.request("deliver", {"c": echo._id}, pickle.dumps("still-linked"))
    assert result.fields["r"] == 1
    proc.expect(r"^ECHO 'still-linked'$")
    client.close()
    assert not marker.exists()
    assert_still_serving(proc, port)
    assert sum("frobnicate" in line for line in proc.output) == 1
    assert sum("cannot handle 'deliver'" in line for line in proc.output) == 1


def test_refused_frames_are_what_the_server_sends(victim: tuple[PeerProcess, int]) -> None:
    """The REFUSE a raw client gets is one well-formed frame (so peers can log the reason)."""
    _, port = victim
    answer = raw_exchange(port, b"\x00" * 16)
    magic, fmt, flags, control_len, payload_len = HEADER.unpack_from(answer)
    assert (magic, fmt, flags, payload_len) == (MAGIC, 1, 0, 0)
    assert len(answer) == HEADER.size + control_len
    assert struct.calcsize("!2sBBII") == HEADER.size
