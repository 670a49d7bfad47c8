"""AsyncSocket (reference 1.11) over real sockets on 127.0.0.1, in both coroutine styles:
TCP echo with send_msg/recv_msg, recvall, UDP, accept/connect/create_connection, a blocking
client against a coroutine server, the context manager and attribute delegation."""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING, Any

import pytest

import discoro
from discoro import AsyncSocket, Coro
from discoro.core.blocking_socket import BlockingSocket

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(30)
CLIENTS = 12
ROUNDS = 5


def run(target: Any, *args: Any) -> Any:
    return Coro(target, *args).value(timeout=20)


@pytest.fixture
def listener() -> Iterator[AsyncSocket]:
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    raw.bind(("127.0.0.1", 0))
    raw.listen(64)
    sock = AsyncSocket(raw)
    yield sock
    sock.close()


def port_of(sock: AsyncSocket) -> int:
    return int(sock.getsockname()[1])


def echo_connection_gen(conn: AsyncSocket, coro: Any = None) -> Any:
    with conn:
        while True:
            message = yield conn.recv_msg()
            if not message:
                return
            yield conn.send_msg(b"echo:" + message)


async def echo_connection_async(conn: AsyncSocket, coro: Any = None) -> None:
    with conn:
        while message := await conn.recv_msg():
            await conn.send_msg(b"echo:" + message)


def echo_server(listener: AsyncSocket, connections: int, coro: Any = None) -> Any:
    """Accept ``connections`` clients, serving them alternately in each style."""
    for index in range(connections):
        conn, address = yield listener.accept()
        assert isinstance(conn, AsyncSocket) and address[0] == "127.0.0.1"
        Coro(echo_connection_async if index % 2 else echo_connection_gen, conn)
    return connections


def client_gen(port: int, name: str, coro: Any = None) -> Any:
    sock = AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    yield sock.connect(("127.0.0.1", port))
    replies = []
    for round_ in range(ROUNDS):
        yield sock.send_msg(f"{name}/{round_}".encode())
        replies.append((yield sock.recv_msg()))
    sock.close()
    return replies


async def client_async(port: int, name: str, coro: Any = None) -> list[bytes]:
    async with AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        await sock.connect(("127.0.0.1", port))
        replies = []
        for round_ in range(ROUNDS):
            await sock.send_msg(f"{name}/{round_}".encode())
            replies.append(await sock.recv_msg())
    return replies


def test_echo_server_with_many_clients_in_both_styles(listener: AsyncSocket) -> None:
    server = Coro(echo_server, listener, CLIENTS)
    port = port_of(listener)
    clients = {
        f"c{i}": Coro(client_async if i % 2 else client_gen, port, f"c{i}") for i in range(CLIENTS)
    }
    for name, client in clients.items():
        assert client.value(timeout=20) == [f"echo:{name}/{r}".encode() for r in range(ROUNDS)]
    assert server.value(timeout=20) == CLIENTS


def test_recvall_of_a_large_message_and_send_msg_of_one(listener: AsyncSocket) -> None:
    payload = bytes(range(256)) * (8 * 1024 * 4)  # 8 MiB: many partial sends and receives

    def receiver(coro: Any = None) -> Any:
        conn, _ = yield listener.accept()
        with conn:
            whole = yield conn.recvall(len(payload))
            framed = yield conn.recv_msg()
            at_eof = yield conn.recvall(10)
        return whole, framed, at_eof

    async def sender(coro: Any = None) -> None:
        with AsyncSocket(socket.socket()) as sock:
            await sock.connect(("127.0.0.1", port_of(listener)))
            assert await sock.sendall(payload) is None
            assert await sock.send_msg(payload[:100_000]) is None

    receiving = Coro(receiver)
    run(sender)
    whole, framed, at_eof = receiving.value(timeout=20)
    assert whole == payload and framed == payload[:100_000] and at_eof == b""


def test_recv_msg_gives_empty_bytes_on_a_message_cut_short(listener: AsyncSocket) -> None:
    def receiver(coro: Any = None) -> Any:
        conn, _ = yield listener.accept()
        with conn:
            first = yield conn.recv_msg()
            cut = yield conn.recv_msg()
        return first, cut

    receiving = Coro(receiver)
    with socket.create_connection(("127.0.0.1", port_of(listener)), timeout=10) as raw:
        raw.sendall(b"\x00\x00\x00\x03abc" + b"\x00\x00\x00\x10short")
    assert receiving.value(timeout=20) == (b"abc", b"")


def test_recv_msg_gives_empty_bytes_on_a_hang_up(listener: AsyncSocket) -> None:
    async def receiver(coro: Any = None) -> bytes:
        conn, _ = await listener.accept()
        with conn:
            await conn.send_msg(b"ready")  # the reset must come after the accept
            return await conn.recv_msg()

    receiving = Coro(receiver)
    raw = socket.create_connection(("127.0.0.1", port_of(listener)), timeout=10)
    with AsyncSocket(raw, blocking=True) as client:
        assert client.recv_msg() == b"ready"
        client.sendall(b"\x00\x00\x00\x10part")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # closed with linger 0: the peer sees a reset (ECONNRESET), not an orderly EOF
    assert receiving.value(timeout=20) == b""


def test_udp_exchange_with_recvfrom_and_sendto() -> None:
    server_raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server_raw.bind(("127.0.0.1", 0))
    server = AsyncSocket(server_raw)
    address = server.getsockname()

    def serve(count: int, coro: Any = None) -> Any:
        for _ in range(count):
            data, sender = yield server.recvfrom(1024)
            yield server.sendto(data[::-1], sender)
        return count

    async def ask(coro: Any = None) -> list[bytes]:
        with AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as sock:
            sock.settimeout(10)  # a lost datagram fails the test instead of hanging it
            replies = []
            for word in (b"abc", b"hello", b"x" * 500):
                assert await sock.sendto(word, 0, address) == len(word)
                reply, origin = await sock.recvfrom(1024)
                assert origin == address
                replies.append(reply)
            return replies

    serving = Coro(serve, 3)
    try:
        assert run(ask) == [b"cba", b"olleh", b"x" * 500]
        assert serving.value(timeout=20) == 3
    finally:
        server.close()


def test_create_connection_replaces_the_placeholder_socket(listener: AsyncSocket) -> None:
    def main(coro: Any = None) -> Any:
        sock = AsyncSocket()  # no socket yet: create_connection makes it
        yield sock.create_connection(("localhost", port_of(listener)), timeout=10)
        conn, _ = yield listener.accept()
        yield sock.send_msg(b"over create_connection")
        got = yield conn.recv_msg()
        peer = sock.getpeername()
        timeout = sock.gettimeout()
        sock.close()
        conn.close()
        return got, peer[1], timeout

    assert run(main) == (b"over create_connection", port_of(listener), 10.0)


def test_connect_to_a_closed_port_raises_connection_refused() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now

    async def main(coro: Any = None) -> list[str]:
        outcomes = []
        with AsyncSocket(socket.socket()) as sock:
            try:
                await sock.connect(("localhost", port))  # a name: resolved off the loop
            except ConnectionRefusedError:
                outcomes.append("refused")
        with AsyncSocket() as sock:
            try:
                await sock.create_connection(("127.0.0.1", port))
            except ConnectionRefusedError:
                outcomes.append("refused")
        return outcomes

    assert run(main) == ["refused", "refused"]


def test_blocking_client_against_a_coroutine_server(listener: AsyncSocket) -> None:
    server = Coro(echo_server, listener, 1)
    client = AsyncSocket(socket.socket(), blocking=True)
    assert isinstance(client, BlockingSocket) and isinstance(client, AsyncSocket)
    with client:
        client.settimeout(10)
        assert client.connect(("127.0.0.1", port_of(listener))) is None
        for word in (b"one", b"two", b"three" * 10_000):
            assert client.send_msg(word) is None
            assert client.recv_msg() == b"echo:" + word
        assert client.sendall(b"\x00\x00\x00\x02hi") is None
        assert client.recvall(7) == b"\x00\x00\x00\x07ech"
        assert client.recv(100) == b"o:hi"
    assert server.value(timeout=20) == 1


def test_setblocking_switches_between_the_two_modes(listener: AsyncSocket) -> None:
    sock = AsyncSocket(socket.socket())
    try:
        assert type(sock) is AsyncSocket and sock.gettimeout() is None
        sock.settimeout(None)  # the original's quirk: this made it blocking; not here
        assert type(sock) is AsyncSocket and sock._sock.gettimeout() == 0.0
        sock.setblocking(True)
        assert type(sock) is BlockingSocket and sock._sock.gettimeout() is None
        sock.settimeout(5)
        assert sock._sock.gettimeout() == 5.0
        sock.connect(("127.0.0.1", port_of(listener)))  # a plain call now
        sock.setblocking(False)
        assert type(sock) is AsyncSocket and sock.gettimeout() == 5.0

        async def talk(coro: Any = None) -> bytes:
            conn, _ = await listener.accept()
            with conn:
                await sock.send_msg(b"after the switch")
                return await conn.recv_msg()

        assert run(talk) == b"after the switch"
    finally:
        sock.close()


def test_a_subclass_keeps_its_class_and_methods() -> None:
    class Tagged(AsyncSocket):
        __slots__ = ()

        def tag(self) -> str:
            return "tagged"

    with Tagged(socket.socket()) as sock, Tagged(socket.socket(), blocking=True) as other:
        assert type(sock) is Tagged and sock.tag() == "tagged"
        assert type(other) is Tagged and other.gettimeout() is None
        sock.setblocking(True)
        assert type(sock) is Tagged


def test_context_manager_closes_and_attributes_are_the_raw_sockets() -> None:
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with AsyncSocket(raw) as sock:
        assert sock.fileno() == raw.fileno() >= 0
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        assert raw.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        sock.bind(("127.0.0.1", 0))
        assert sock.getsockname() == raw.getsockname()
        with pytest.raises(AttributeError):
            sock.no_such_attribute  # noqa: B018
    assert raw.fileno() == -1  # closed on leaving the block
    sock.close()  # a second close is harmless


def test_unwrap_gives_the_raw_socket_back_in_blocking_mode() -> None:
    raw = socket.socket()
    sock = AsyncSocket(raw)
    sock.settimeout(3)

    def reads_after_unwrap(coro: Any = None) -> Any:
        try:
            yield sock.recv(1)
        except OSError as error:
            return str(error)
        return "read"

    with sock.unwrap() as back:
        assert back is raw and back.gettimeout() == 3.0
        assert run(reads_after_unwrap) == "[Errno 9] the socket was closed"


def test_aliases_and_knobs_are_exported() -> None:
    assert discoro.AsynCoroSocket is discoro.AsyncSocket is AsyncSocket
    assert discoro.MaxConnectionErrors == 10
    import discoro as asyncoro

    asyncoro.MaxConnectionErrors = 3  # what chat_chan_server does: accepted, no effect here
    try:
        assert discoro.MaxConnectionErrors == 3
    finally:
        asyncoro.MaxConnectionErrors = 10
    previous = socket.getdefaulttimeout()
    AsyncSocket.setdefaulttimeout(7)
    try:
        assert AsyncSocket.getdefaulttimeout() == 7.0
        with AsyncSocket(socket.socket()) as sock:
            assert sock.gettimeout() == 7.0
    finally:
        AsyncSocket.setdefaulttimeout(previous)
