"""`Link`: one authenticated TCP (or TLS) stream to a peer, as an asyncio protocol.

The link is the I/O shell around `wire.Connection`: bytes in, events out, messages in,
bytes out. It knows nothing of what messages mean; it hands every event to its owner (the
`Network`).

Invariants:
- Nothing but handshake frames is exchanged before `HandshakeComplete`; a protocol error
  closes the stream after one log line (and, during the handshake, a REFUSE frame that says
  why), and never disturbs other links.
- Frames queued with `send` in one loop iteration go out in one ``writelines`` at the end of
  it, in order (small writes coalesced).
- Liveness: any bytes received count as a sign of life; an idle link is pinged every
  ``ping_interval`` seconds and closed after ``dead_after`` intervals of silence.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING, Any

from discoro.core.log import logger
from discoro.errors import ProtocolError
from discoro.wire.connection import Connection
from discoro.wire.events import NEED_DATA, ConnectionClosed, HandshakeComplete, MessageReceived
from discoro.wire.handshake import Role
from discoro.wire.messages import Message

if TYPE_CHECKING:
    from discoro.net.network import Network

HANDSHAKE_TIMEOUT = 5.0
PING = Message("ping")


class Link(asyncio.Protocol):
    def __init__(self, network: Network, role: Role) -> None:
        self.network = network
        self.role = role
        self.conn = Connection(role, network.secret, network.identity)
        self.transport: asyncio.Transport | None = None
        self.peer: Any = None  # the Peer, once authenticated
        self.authenticated: asyncio.Future[Any] = network.loop.create_future()
        self.lost: asyncio.Future[None] = network.loop.create_future()
        self.retiring = False
        self._out: list[bytes] = []
        self._flush_pending = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._last_heard = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self.remote_address = "?"

    def __repr__(self) -> str:
        return f"<Link {self.role.value} {self.remote_address} peer={self.conn.peer}>"

    # -- asyncio callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peername = transport.get_extra_info("peername")
        if peername:
            self.remote_address = f"{peername[0]}:{peername[1]}"
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.role is Role.CLIENT:
            self.conn.start()
            self._write_own()
        self._timer = self.network.loop.call_later(HANDSHAKE_TIMEOUT, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        self._last_heard = time.monotonic()
        conn = self.conn
        try:
            conn.receive_data(data)
            self._process()
        except ProtocolError as exc:
            self._refuse(exc)

    def eof_received(self) -> bool:
        try:
            self.conn.receive_data(b"")
            self._process()
        except ProtocolError as exc:
            self._refuse(exc)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._can_write.set()
        if not self.authenticated.done():
            self.authenticated.set_exception(
                ConnectionError(f"connection to {self.remote_address} closed: {exc or 'EOF'}")
            )
            self.authenticated.exception()  # retrieved: nobody may be waiting
        if not self.lost.done():
            self.lost.set_result(None)
        self.network.link_lost(self)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # -- events ---------------------------------------------------------------------------

    def _process(self) -> None:
        conn = self.conn
        dispatch = self.network.dispatch
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if type(event) is MessageReceived:
                dispatch(self, event.message)
            elif type(event) is HandshakeComplete:
                self._write_own()
                if self._timer is not None:
                    self._timer.cancel()
                self._schedule_ping()
                self.network.link_authenticated(self, event.peer)
            elif type(event) is ConnectionClosed:
                self.close()
                break
        self._write_own()

    def _refuse(self, exc: ProtocolError) -> None:
        what = "refused" if self.peer is None else "dropped"
        logger.warning("%s connection with %s: %s", what, self.remote_address, exc)
        self._write_own()
        self.close()

    def _handshake_expired(self) -> None:
        if self.peer is None and self.transport is not None:
            logger.warning("dropped connection with %s: no handshake in time", self.remote_address)
            self.close()

    # -- liveness -------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        self._timer = self.network.loop.call_later(self.network.ping_interval, self._check_alive)

    def _check_alive(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        silent = time.monotonic() - self._last_heard
        if silent > self.network.ping_interval * self.network.dead_after:
            logger.warning("peer %s silent for %.1f s; closing its connection", self.peer, silent)
            self.transport.abort()
            return
        if silent >= self.network.ping_interval * 0.9:
            self.send(PING)
        self._schedule_ping()

    # -- sending --------------------------------------------------------------------------

    def send(self, message: Message) -> None:
        self._out += self.conn.send_parts(message)
        if not self._flush_pending:
            self._flush_pending = True
            self.network.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        out, self._out = self._out, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(out)

    async def drained(self) -> None:
        """Wait until the stream's write buffer has room (back-pressure for `deliver`)."""
        await self._can_write.wait()

    def _write_own(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if self._out:
                self._flush()
            self.transport.close()
