"""AsyncSocket in blocking mode (reference 1.11, ``blocking=True``): the same names as
plain calls with the same results as the asynchronous ones, for threads and programs that
are not coroutines (the original's ``chat_sock_client``)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from discoro import AsyncSocket
from discoro.core.blocking_socket import BlockingSocket

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(30)
SHORT = 0.2  # a timeout meant to fire: nothing is ever sent in time


@pytest.fixture
def pair() -> Iterator[tuple[BlockingSocket, socket.socket]]:
    """A connected pair: a blocking-mode AsyncSocket and a plain socket at the other end."""
    mine, theirs = socket.socketpair()
    theirs.settimeout(10)
    sock = AsyncSocket(mine, blocking=True)
    assert isinstance(sock, BlockingSocket)
    yield sock, theirs
    sock.close()
    theirs.close()


def test_recvall_partial_on_timeout_then_socket_timeout(
    pair: tuple[BlockingSocket, socket.socket],
) -> None:
    sock, theirs = pair
    sock.settimeout(SHORT)
    theirs.sendall(b"abc")
    assert sock.recvall(10) == b"abc"
    with pytest.raises(TimeoutError):
        sock.recvall(10)
    with pytest.raises(TimeoutError):
        sock.recv_msg()


def test_recvall_and_recv_msg_at_eof_and_cut_short(
    pair: tuple[BlockingSocket, socket.socket],
) -> None:
    sock, theirs = pair
    theirs.sendall(b"\x00\x00\x00\x02ok\x00\x00\x00\x00" + b"\x00\x00\x00\x09cut")
    theirs.close()
    assert sock.recv_msg() == b"ok"
    assert sock.recv_msg() == b""  # an empty message reads like EOF, as in the original
    assert sock.recv_msg() == b""  # cut short
    assert sock.recvall(4) == b""  # EOF


def test_sendall_to_a_reader_that_never_reads(
    pair: tuple[BlockingSocket, socket.socket],
) -> None:
    sock, _ = pair
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.settimeout(SHORT)
    payload = b"z" * (16 * 1024 * 1024)
    sent = sock.sendall(payload)
    assert isinstance(sent, int) and 0 < sent < len(payload)
    with pytest.raises(TimeoutError):
        sock.send_msg(payload)


def test_udp_in_blocking_mode() -> None:
    with (
        AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), blocking=True) as a,
        AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), blocking=True) as b,
    ):
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        a.settimeout(10)
        b.settimeout(10)
        assert a.sendto(b"first", b.getsockname()) == 5
        assert b.recvfrom(100) == (b"first", a.getsockname())
        assert b.sendto(b"second", 0, a.getsockname()) == 6
        assert a.recv(100) == b"second"
        assert a.send is not None and "blocking" in repr(a)


def test_create_connection_and_accept_in_blocking_mode() -> None:
    raw = socket.socket()
    raw.bind(("127.0.0.1", 0))
    raw.listen()
    with AsyncSocket(raw, blocking=True) as listener, AsyncSocket(blocking=True) as client:
        client.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=10)
        conn, address = listener.accept()
        with conn:
            assert isinstance(conn, BlockingSocket) and address == client.getsockname()
            assert client.send(b"plain") == 5
            assert conn.recvall(5) == b"plain"
    assert "closed" in repr(client)
