"""`BlockingSocket`: what ``AsyncSocket(sock, blocking=True)`` gives (reference 1.11).

The same method names as `AsyncSocket`, as ordinary blocking calls with the same results
(`recvall`, `send_msg`/`recv_msg` framing, TLS on `connect`/`accept`), for programs and
threads that talk to coroutine servers without being coroutines (the original's
``chat_sock_client``). The raw socket is in blocking mode and carries the timeout.
`setblocking(False)` turns the object back into an `AsyncSocket`.

Never call these from a coroutine on the loop's thread: they block every coroutine.
"""

from __future__ import annotations

import socket
from typing import cast

from discoro.core.asyncsocket import AsyncSocket, Buffer, SocketAddress
from discoro.core.socket_framing import HEADER_SIZE, body_size, framed


class BlockingSocket(AsyncSocket):
    """An `AsyncSocket` in blocking mode: each method returns its result directly."""

    __slots__ = ()

    # Each method overrides an ``async def`` of the same name with its synchronous version:
    # the two classes are the two modes of one object (`setblocking` switches between them).

    def recv(self, bufsize: int, flags: int = 0) -> bytes:  # type: ignore[override]
        return self._sock.recv(bufsize, flags)

    def recvall(self, bufsize: int) -> bytes:  # type: ignore[override]
        """Exactly ``bufsize`` bytes; ``b''`` if the peer closes first; on a timeout what
        arrived so far (`socket.timeout` if nothing did)."""
        buffer = bytearray(bufsize)
        view = memoryview(buffer)
        received = 0
        while received < bufsize:
            try:
                count = self._sock.recv_into(view[received:], bufsize - received)
            except TimeoutError:
                if received:
                    return bytes(view[:received])
                raise
            if count == 0:
                return b""
            received += count
        return bytes(buffer)

    def recvfrom(  # type: ignore[override]
        self, bufsize: int, flags: int = 0
    ) -> tuple[bytes, SocketAddress]:
        data, address = self._sock.recvfrom(bufsize, flags)
        return data, cast("SocketAddress", address)

    def recv_msg(self) -> bytes:  # type: ignore[override]
        try:
            header = self.recvall(HEADER_SIZE)
            if len(header) < HEADER_SIZE:
                return b""
            size = body_size(header)
            data = self.recvall(size) if size else b""
        except ConnectionError:
            return b""
        return data if len(data) == size else b""

    def send(self, data: Buffer, flags: int = 0) -> int:  # type: ignore[override]
        return self._sock.send(data, flags)

    def sendall(self, data: Buffer) -> int | None:  # type: ignore[override]
        """Send all of ``data``: None when done; on a timeout the number of bytes sent if
        that is not 0 (`socket.timeout` otherwise)."""
        view = memoryview(data).cast("B")
        sent = 0
        while sent < len(view):
            try:
                sent += self._sock.send(view[sent:])
            except TimeoutError:
                if sent:
                    return sent
                raise
        return None

    def sendto(  # type: ignore[override]
        self, data: Buffer, flags_or_address: int | SocketAddress, address: SocketAddress = ""
    ) -> int:
        if isinstance(flags_or_address, int):
            return self._sock.sendto(data, flags_or_address, address)
        return self._sock.sendto(data, flags_or_address)

    def send_msg(self, data: Buffer) -> int | None:  # type: ignore[override]
        return self.sendall(framed(data))

    def accept(self) -> tuple[AsyncSocket, SocketAddress]:  # type: ignore[override]
        conn, address = self._sock.accept()
        peer = self._adopt(conn)
        if self._tls.enabled:
            conn.settimeout(self._timeout)  # the handshake is part of accepting
            try:
                peer._wrap(server_side=True, handshake_now=True)
            except BaseException:
                peer.close()
                raise
            peer.settimeout(socket.getdefaulttimeout())
        return peer, cast("SocketAddress", address)

    def connect(self, address: SocketAddress) -> None:  # type: ignore[override]
        self._sock.connect(address)
        if self._tls.enabled:
            self._wrap(server_side=False, handshake_now=True)

    def create_connection(  # type: ignore[override]
        self,
        host_port: tuple[str, int],
        timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
    ) -> None:
        if timeout is not None:
            self.settimeout(timeout)
        sock = socket.create_connection(host_port, self._timeout, source_address)
        self._replace(sock)
        if self._tls.enabled:
            self._wrap(server_side=False, handshake_now=True)
