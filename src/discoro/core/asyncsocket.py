"""`AsyncSocket` (alias `AsynCoroSocket`): a standard socket for coroutines (reference 1.11).

``AsyncSocket(sock)`` wraps a socket. Its I/O methods are ``async def``: a generator
coroutine ``yield``s them, an ``async def`` coroutine (or any asyncio code on the same loop)
``await``s them. ``AsyncSocket(sock, blocking=True)`` gives a `BlockingSocket`, whose
methods of the same names are ordinary blocking calls (see `blocking_socket.py`).

Theory of operation: the raw socket is non-blocking. Every operation first tries the system
call; when it would block, the coroutine waits until the loop sees the descriptor readable
(or writable), with a reader/writer registered for just that wait, then tries again. TLS
sockets wait for whichever direction OpenSSL asks for. Nothing blocks the loop and no I/O
happens behind the coroutine's back, so an interrupt (``throw``, ``terminate``, asyncio's
cancellation) arriving during a wait loses no data: it only removes the registration.

Timeouts are idle timeouts (reference 1.10): each wait may last ``gettimeout()`` seconds,
re-armed whenever data moves. A timed-out operation raises `socket.timeout`
(`TimeoutError`), except that `recvall` and `sendall` return what they transferred so far
(the bytes received, the number of bytes sent) when that is something.

Rules: one coroutine receives and one sends on a socket at a time (a second one that would
wait in the same direction gets a RuntimeError rather than silently taking the first one's
wake-ups). All the waits on a socket at any one time are on one event loop.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import socket
import ssl
from typing import TYPE_CHECKING, TypeVar, cast

from discoro.core.socket_base import SocketBase, closed_error
from discoro.core.socket_framing import HEADER_SIZE, body_size, framed

if TYPE_CHECKING:
    from collections.abc import Callable

    from discoro.core.socket_tls import SSLVersion

T = TypeVar("T")
SocketAddress = tuple[str, int] | tuple[str, int, int, int] | str
Buffer = bytes | bytearray | memoryview
_IN_PROGRESS = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EALREADY}


def _wake(wait: asyncio.Future[bool]) -> None:
    if not wait.done():
        wait.set_result(True)


def _expire(wait: asyncio.Future[bool]) -> None:
    if not wait.done():
        wait.set_result(False)


def _is_numeric(family: int, host: str) -> bool:
    try:
        socket.inet_pton(family, host.partition("%")[0])
    except (OSError, ValueError):
        return False
    return True


class AsyncSocket(SocketBase):
    """``AsyncSocket(sock, blocking=False, keyfile=None, certfile=None, ssl_version=None,
    cafile=None)``: ``sock`` for coroutines; TLS (see `socket_tls.py`) when ``certfile`` is
    given. ``sock`` None makes a TCP socket for `create_connection` to replace."""

    __slots__ = ()

    def __new__(
        cls,
        sock: socket.socket | None = None,
        blocking: bool = False,
        keyfile: str | None = None,
        certfile: str | None = None,
        ssl_version: SSLVersion = None,
        cafile: str | None = None,
    ) -> AsyncSocket:
        from discoro.core.blocking_socket import BlockingSocket

        if blocking and cls is AsyncSocket:  # a user's subclass keeps its own methods
            return object.__new__(BlockingSocket)
        return object.__new__(cls)

    def __init__(
        self,
        sock: socket.socket | None = None,
        blocking: bool = False,
        keyfile: str | None = None,
        certfile: str | None = None,
        ssl_version: SSLVersion = None,
        cafile: str | None = None,
    ) -> None:
        self._setup(sock, keyfile, certfile, ssl_version, cafile)
        self.setblocking(blocking)

    def setblocking(self, flag: bool) -> None:
        """Switch mode: blocking methods (True) or methods to yield/await (False)."""
        from discoro.core.blocking_socket import BlockingSocket

        if flag:
            if self._waits:
                raise RuntimeError("a coroutine is waiting on this socket")
            self._sock.settimeout(self._timeout)
            new_class: type[AsyncSocket] = BlockingSocket
        else:
            self._sock.setblocking(False)
            new_class = AsyncSocket
        self._blocking = bool(flag)
        if type(self) in (AsyncSocket, BlockingSocket):  # a user's subclass keeps its class
            object.__setattr__(self, "__class__", new_class)

    def _adopt(self, conn: socket.socket) -> AsyncSocket:
        """A socket of this one's kind and TLS settings for an accepted connection."""
        peer = type(self)(conn, self._blocking)
        peer._tls = self._tls
        return peer

    # -- waiting for the descriptor -----------------------------------------------------

    async def _ready(self, writing: bool) -> None:
        """Wait until the socket is writable (or readable); `socket.timeout` after
        ``gettimeout()`` seconds."""
        if self._closed:
            raise closed_error()
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._waits:
                raise RuntimeError("the socket is waited on in another event loop")
            self._loop = loop
        fd = self._sock.fileno()
        if fd < 0:  # the raw socket was closed behind our back
            raise closed_error()
        if writing in self._waits.values():  # a second registration would replace the first
            action = "sending on" if writing else "receiving from"
            raise RuntimeError(f"another coroutine is already {action} {self!r}")
        wait: asyncio.Future[bool] = loop.create_future()
        if writing:
            loop.add_writer(fd, _wake, wait)
        else:
            loop.add_reader(fd, _wake, wait)
        timeout = self._timeout
        timer = None if timeout is None else loop.call_later(timeout, _expire, wait)
        self._waits[wait] = writing
        try:
            ready = await wait
        finally:
            if timer is not None:
                timer.cancel()
            if wait in self._waits:  # still ours: closing did not take it over
                del self._waits[wait]
                if writing:
                    loop.remove_writer(fd)
                else:
                    loop.remove_reader(fd)
        if not ready:
            raise TimeoutError("timed out")

    async def _io(self, writing: bool, operation: Callable[[], T]) -> T:
        """``operation()`` on the non-blocking socket, waiting whenever it would block."""
        while True:
            if self._closed:
                raise closed_error()
            try:
                return operation()
            except ssl.SSLWantReadError:
                await self._ready(False)
            except ssl.SSLWantWriteError:
                await self._ready(True)
            except (BlockingIOError, InterruptedError):
                await self._ready(writing)

    # -- receiving ------------------------------------------------------------------------

    async def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Up to ``bufsize`` bytes, as soon as there are some; ``b''`` at EOF."""
        return await self._io(False, functools.partial(self._sock.recv, bufsize, flags))

    async def recvall(self, bufsize: int) -> bytes:
        """Exactly ``bufsize`` bytes; ``b''`` if the peer closes first; on a timeout what
        arrived so far (`socket.timeout` if nothing did)."""
        buffer = bytearray(bufsize)
        view = memoryview(buffer)
        received = 0
        while received < bufsize:
            read = functools.partial(self._sock.recv_into, view[received:], bufsize - received)
            try:
                count = await self._io(False, read)
            except TimeoutError:
                if received:
                    return bytes(view[:received])
                raise
            if count == 0:
                return b""
            received += count
        return bytes(buffer)

    async def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, SocketAddress]:
        """A datagram and its sender's address."""
        data, address = await self._io(
            False, functools.partial(self._sock.recvfrom, bufsize, flags)
        )
        return data, cast("SocketAddress", address)

    async def recv_msg(self) -> bytes:
        """One message of `send_msg`; ``b''`` on EOF, a hang-up (connection reset) or a
        message cut short; `socket.timeout` if nothing at all arrived in time."""
        try:
            header = await self.recvall(HEADER_SIZE)
            if len(header) < HEADER_SIZE:
                return b""
            size = body_size(header)
            data = await self.recvall(size) if size else b""
        except ConnectionError:
            return b""
        return data if len(data) == size else b""

    # -- sending --------------------------------------------------------------------------

    async def send(self, data: Buffer, flags: int = 0) -> int:
        """Send some of ``data`` as soon as the socket takes it; the number of bytes sent."""
        return await self._io(True, functools.partial(self._sock.send, data, flags))

    async def sendall(self, data: Buffer) -> int | None:
        """Send all of ``data``: None when done; on a timeout the number of bytes sent if
        that is not 0 (`socket.timeout` otherwise)."""
        view = memoryview(data).cast("B")
        sent = 0
        while sent < len(view):
            write = functools.partial(self._sock.send, view[sent:])
            try:
                sent += await self._io(True, write)
            except TimeoutError:
                if sent:
                    return sent
                raise
        return None

    async def sendto(
        self, data: Buffer, flags_or_address: int | SocketAddress, address: SocketAddress = ""
    ) -> int:
        """``sendto(data, address)`` or ``sendto(data, flags, address)``."""
        sock = self._sock
        if isinstance(flags_or_address, int):
            send = functools.partial(sock.sendto, data, flags_or_address, address)
        else:
            send = functools.partial(sock.sendto, data, flags_or_address)
        return await self._io(True, send)

    async def send_msg(self, data: Buffer) -> int | None:
        """Send ``data`` as one message for `recv_msg` (length-prefixed); as `sendall`."""
        return await self.sendall(framed(data))

    # -- connections ----------------------------------------------------------------------

    async def accept(self) -> tuple[AsyncSocket, SocketAddress]:
        """Wait for a connection: ``(AsyncSocket, address)``; with TLS, after the server
        side of the handshake (whose failure is raised here)."""
        conn, address = await self._io(False, self._sock.accept)
        peer = self._adopt(conn)
        if self._tls.enabled:
            peer._timeout = self._timeout  # the handshake is part of accepting
            try:
                await peer._handshake(server_side=True)
            except BaseException:
                peer.close()
                raise
            peer._timeout = socket.getdefaulttimeout()
        return peer, cast("SocketAddress", address)

    async def connect(self, address: SocketAddress) -> None:
        """Connect (resolving a host name off the loop); with TLS, then the client side of
        the handshake."""
        address = await self._resolved(address)
        sock = self._sock
        error = sock.connect_ex(address)
        if error in _IN_PROGRESS:
            await self._ready(True)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error not in (0, errno.EISCONN):
            raise OSError(error, os.strerror(error))
        if self._tls.enabled:
            await self._handshake(server_side=False)

    async def create_connection(
        self,
        host_port: tuple[str, int],
        timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
    ) -> None:
        """Like `socket.create_connection`, into this object: try each address of the host
        with a new socket (replacing the one this object holds) until one connects."""
        host, port = host_port
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if timeout is not None:
            self.settimeout(timeout)
        error: OSError = OSError(f"no address found for {host!r}")
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            self._replace(sock)
            try:
                if source_address is not None:
                    sock.bind(source_address)
                await self.connect(cast("SocketAddress", address))
            except OSError as err:
                error = err
                continue
            return
        raise error

    def _replace(self, sock: socket.socket) -> None:
        if self._waits:
            raise RuntimeError("a coroutine is waiting on this socket")
        if self._sock is not sock:
            self._sock.close()
        self._sock = sock

    async def _resolved(self, address: SocketAddress) -> SocketAddress:
        family = self._sock.family
        if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
            return address
        host, port = address[0], address[1]
        if not host or _is_numeric(family, host):
            return address
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, family=family, type=self._sock.type)
        if not infos:
            raise OSError(f"no address found for {host!r}")
        return cast("SocketAddress", infos[0][4])

    async def _handshake(self, server_side: bool) -> None:
        tls = self._wrap(server_side, handshake_now=False)
        await self._io(False, tls.do_handshake)


AsynCoroSocket = AsyncSocket
