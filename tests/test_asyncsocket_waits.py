"""AsyncSocket waits (reference 1.10, 1.11): timeouts that fire (socket.timeout, or the
partial result), interrupts and asyncio cancellation during a wait that lose no data,
closing a socket a coroutine waits on, plain asyncio code on the kernel's loop, and socket
traffic beside discoro's own network traffic in one process."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import TYPE_CHECKING, Any

import pytest

from discoro import AsynCoro, AsyncSocket, Coro
from netpeers import start_peer
from testing import all_blocked

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(30)
SHORT = 0.2  # a timeout meant to fire: nothing is ever sent in time


def run(target: Any, *args: Any) -> Any:
    return Coro(target, *args).value(timeout=20)


@pytest.fixture
def pair() -> Iterator[tuple[AsyncSocket, socket.socket]]:
    """A connected pair: an AsyncSocket and the plain blocking socket at the other end."""
    mine, theirs = socket.socketpair()
    theirs.settimeout(10)
    sock = AsyncSocket(mine)
    yield sock, theirs
    sock.close()
    theirs.close()


def test_recv_timeout_raises_socket_timeout_in_both_styles(
    pair: tuple[AsyncSocket, socket.socket],
) -> None:
    sock, _ = pair
    sock.settimeout(SHORT)

    def generator_style(coro: Any = None) -> Any:
        try:
            yield sock.recv(10)
        except socket.timeout as error:  # noqa: UP041 - what ported programs write
            return type(error), str(error)
        return None

    async def async_style(coro: Any = None) -> Any:
        with pytest.raises(TimeoutError):
            await sock.recv_msg()
        return "timed out"

    assert run(generator_style) == (TimeoutError, "timed out")
    assert run(async_style) == "timed out"


def test_recvall_returns_the_partial_data_on_a_timeout(
    pair: tuple[AsyncSocket, socket.socket],
) -> None:
    sock, theirs = pair
    theirs.sendall(b"abc")

    def main(coro: Any = None) -> Any:
        sock.settimeout(SHORT)
        partial = yield sock.recvall(10)
        try:
            yield sock.recvall(10)
        except TimeoutError:
            return partial, "then timeout"
        return partial, "no timeout"

    assert run(main) == (b"abc", "then timeout")


def test_sendall_to_a_reader_that_never_reads_returns_the_count_then_times_out(
    pair: tuple[AsyncSocket, socket.socket],
) -> None:
    sock, _ = pair
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    payload = b"x" * (16 * 1024 * 1024)  # far more than the two socket buffers hold

    async def main(coro: Any = None) -> Any:
        sock.settimeout(SHORT)
        sent = await sock.sendall(payload)
        try:
            await sock.send(payload)
        except TimeoutError:
            return sent, "then timeout"
        return sent, "sent"

    sent, then = run(main)
    assert isinstance(sent, int) and 0 < sent < len(payload) and then == "then timeout"


def test_accept_timeout_raises_socket_timeout() -> None:
    raw = socket.socket()
    raw.bind(("127.0.0.1", 0))
    raw.listen()
    with AsyncSocket(raw) as listener:
        listener.settimeout(SHORT)

        def main(coro: Any = None) -> Any:
            try:
                yield listener.accept()
            except TimeoutError:
                return "timed out"
            return "accepted"

        assert run(main) == "timed out"


def test_an_interrupt_during_recv_loses_no_data(pair: tuple[AsyncSocket, socket.socket]) -> None:
    sock, theirs = pair
    interrupted = threading.Event()

    def reader(coro: Any = None) -> Any:
        try:
            yield sock.recv(100)
        except KeyError as error:
            caught = error.args[0]
        interrupted.set()
        rest = yield sock.recvall(6)
        return caught, rest

    coro = Coro(reader)
    all_blocked()  # it waits in recv: its reader is registered
    assert len(sock._waits) == 1
    coro.throw(KeyError("woken"))
    assert interrupted.wait(10)
    theirs.sendall(b"abcdef")
    assert coro.value(timeout=20) == ("woken", b"abcdef")
    assert not sock._waits


def test_terminate_during_recv_leaves_the_socket_usable(
    pair: tuple[AsyncSocket, socket.socket],
) -> None:
    sock, theirs = pair

    async def reader(coro: Any = None) -> bytes:
        return await sock.recv(100)

    first = Coro(reader)
    all_blocked()
    first.terminate()
    assert first.value(timeout=20) is None
    assert not sock._waits
    second = Coro(reader)
    theirs.sendall(b"for the second")
    assert second.value(timeout=20) == b"for the second"


def test_asyncio_timeout_cancels_the_wait_and_the_socket_goes_on(
    pair: tuple[AsyncSocket, socket.socket],
) -> None:
    sock, theirs = pair

    async def main(coro: Any = None) -> Any:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(SHORT):
                await sock.recv(100)
        assert not sock._waits
        theirs.sendall(b"later")
        return await sock.recv(100)

    assert run(main) == b"later"


def test_a_second_receiver_is_refused_and_the_first_goes_on(
    pair: tuple[AsyncSocket, socket.socket],
) -> None:
    sock, theirs = pair

    async def reader(coro: Any = None) -> bytes:
        return await sock.recv(100)

    first = Coro(reader)
    all_blocked()

    async def second_reader(coro: Any = None) -> str:
        try:
            await sock.recv(100)
        except RuntimeError as error:
            return str(error)
        return "received"

    assert "already receiving" in run(second_reader)
    theirs.sendall(b"for the first")
    assert first.value(timeout=20) == b"for the first"


def test_close_wakes_a_coroutine_waiting_on_the_socket(
    pair: tuple[AsyncSocket, socket.socket],
) -> None:
    sock, _ = pair

    def reader(coro: Any = None) -> Any:
        try:
            yield sock.recv(100)
        except OSError as error:
            return error.errno
        return None

    coro = Coro(reader)
    all_blocked()
    sock.close()  # from this (main) thread: the closing hops over to the loop
    assert coro.value(timeout=20) == 9  # EBADF


def test_plain_asyncio_code_on_the_kernels_loop() -> None:
    """No Coro at all: asyncio tasks on the kernel's loop use AsyncSocket like any asyncio
    code, and gather/wait_for work with its calls."""

    async def exchange() -> tuple[bytes, bytes]:
        mine, theirs = socket.socketpair()
        with AsyncSocket(mine) as left, AsyncSocket(theirs) as right:

            async def echo_once() -> None:
                await right.send_msg(b"re:" + await right.recv_msg())

            server = asyncio.ensure_future(echo_once())
            await left.send_msg(b"ping")
            reply = await asyncio.wait_for(left.recv_msg(), 10)
            await server
            payload = b"y" * 3_000_000
            sent, received = await asyncio.gather(
                left.sendall(payload), right.recvall(len(payload))
            )
            assert sent is None and received == payload
            return reply, received[:3]

    assert AsynCoro.instance().run_sync(exchange(), timeout=20) == (b"re:ping", b"yyy")


PEER_PROGRAM = """
    def echo(coro=None):
        while True:
            client, payload = yield coro.receive()
            client.send(payload)

    assert Coro(echo).register("echo") == 0
"""


def test_socket_traffic_beside_discoros_network_traffic(net_kernel: AsynCoro) -> None:
    """One coroutine alternates between a remote coroutine (discoro's own links, on the same
    loop) and an AsyncSocket echo: both keep working, interleaved."""
    with start_peer(net_kernel, PEER_PROGRAM) as child:
        mine, theirs = socket.socketpair()
        left, right = AsyncSocket(mine), AsyncSocket(theirs)

        async def socket_echo(coro: Any = None) -> None:
            while message := await right.recv_msg():
                await right.send_msg(message)

        def main(coro: Any = None) -> Any:
            echo = yield Coro.locate("echo", child.location, timeout=10)
            results = []
            for index in range(20):
                echo.send((coro, index))
                yield left.send_msg(b"%d" % index)
                over_network = yield coro.receive(timeout=10)
                over_socket = yield left.recv_msg()
                results.append((over_network, int(over_socket)))
            return results

        Coro(socket_echo)
        try:
            assert run(main) == [(index, index) for index in range(20)]
        finally:
            left.close()
            right.close()
