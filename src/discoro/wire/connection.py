"""Connection: one side of a discoro stream, without I/O (in the manner of h11).

The I/O shell owns the socket and loops::

    conn.start()                          # client: queues its HELLO; server: no-op
    write(conn.data_to_send())
    on bytes b (b"" at EOF):  conn.receive_data(b)
        while (event := conn.next_event()) is not NEED_DATA:
            handle(event)                  # ConnectionClosed: stop reading
        write(conn.data_to_send())
    to send m after HandshakeComplete:  writelines(conn.send_parts(m))

A shell may also let the socket write into the connection's own buffer (``recv_into``, as
``asyncio.BufferedProtocol`` does): ``view = conn.get_buffer()``, read into it, then
``conn.buffer_updated(n)`` instead of ``receive_data``. Once authenticated, it may take the
batch fast path: ``conn.process(handle)`` calls ``handle(message)`` for every complete
message buffered, in one loop, with no event objects, and returns False once the peer closed
the stream cleanly (``conn.feed(b, handle)`` is ``receive_data`` + ``process``);
``conn.send_into(out, m)`` appends m's frame to a list the shell writes later.

Invariants:
- States go HANDSHAKING -> AUTHENTICATED -> CLOSED, or to ERROR from anywhere but CLOSED.
- Before authentication frames are limited to `HANDSHAKE_MAX_FRAME` bytes, may carry no
  payload, and may only be handshake ops: no user byte is handed up (let alone unpickled)
  before the peer proved it holds the secret.
- Every failure is raised as a ProtocolError (or subclass) from `next_event`; the connection
  is then in state ERROR and every later call except `data_to_send` raises
  LocalProtocolError. If it failed during the handshake, `data_to_send` then holds a REFUSE
  frame telling the peer why: write it before closing.
- `send_parts` prepends any bytes the connection queued itself, so they are never overtaken.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from discoro.errors import LocalProtocolError, ProtocolError
from discoro.wire.events import (
    NEED_DATA,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    MessageReceived,
)
from discoro.wire.frames import MAX_CONTROL_SIZE, MAX_FRAME_SIZE, FrameDecoder, FrameEncoder
from discoro.wire.handshake import HANDSHAKE_MAX_FRAME, Handshake, Role, refusal
from discoro.wire.messages import Message, decode_message, message_control

if TYPE_CHECKING:
    from collections.abc import Callable

    from discoro.wire.identity import Identity

__all__ = ["Connection", "ConnectionState"]


class ConnectionState(enum.Enum):
    HANDSHAKING = "handshaking"
    AUTHENTICATED = "authenticated"
    CLOSED = "closed"  # the peer ended the stream cleanly (at a frame boundary)
    ERROR = "error"


class Connection:
    """One end of a discoro connection; see the module docstring."""

    def __init__(
        self,
        role: Role,
        secret: bytes,
        identity: Identity,
        *,
        max_frame_size: int = MAX_FRAME_SIZE,
        max_control_size: int = MAX_CONTROL_SIZE,
    ) -> None:
        self.role = role
        self.identity = identity
        self.state = ConnectionState.HANDSHAKING
        self.peer: Identity | None = None
        self.max_frame_size = max_frame_size
        self.max_control_size = max_control_size
        self._handshake = Handshake(role, secret, identity)
        self._decoder = FrameDecoder(HANDSHAKE_MAX_FRAME, HANDSHAKE_MAX_FRAME, allow_payload=False)
        self._encoder = FrameEncoder(max_frame_size, max_control_size)
        self._outbox: list[bytes] = []
        self._started = False
        self._eof = False
        self._error: ProtocolError | None = None
        #: Room to receive into (e.g. with ``recv_into``); then call `buffer_updated`. Large
        #: payloads are received straight into the buffer they are handed up in. Always
        #: usable: it only hands out room.
        self.get_buffer: Callable[..., memoryview] = self._decoder._buffer.get_buffer

    def __repr__(self) -> str:
        return f"<Connection {self.role.value} {self.state.value} peer={self.peer}>"

    # -- driving the connection -----------------------------------------------------------

    def start(self) -> None:
        """Begin the handshake (the client queues its HELLO). Call once, before anything."""
        self._check_usable()
        if self._started:
            raise LocalProtocolError("connection already started")
        self._started = True
        self._queue(self._handshake.start())

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the stream; ``b""`` means the peer closed it (EOF)."""
        self._check_usable()
        if self._eof:
            raise LocalProtocolError("data received after EOF")
        if data:
            self._decoder.feed(data)
        else:
            self._eof = True

    def next_event(self) -> Event:
        """The next event, or NEED_DATA; raises ProtocolError when the peer broke the rules."""
        if self.state is ConnectionState.AUTHENTICATED:  # the hot path
            try:
                frame = self._decoder.next_frame()
                if frame is not None:
                    return MessageReceived(decode_message(frame[0], frame[1]))
                return self._no_frame()
            except ProtocolError as exc:
                self._fail(exc)
                raise
        self._check_usable()
        if self.state is ConnectionState.CLOSED:
            return ConnectionClosed(self.peer is not None)
        if not self._started:
            if self.role is Role.CLIENT:
                raise LocalProtocolError("the client must start() before reading events")
            self.start()
        try:
            return self._handshake_event()
        except ProtocolError as exc:
            self._fail(exc)
            raise

    def data_to_send(self) -> bytes:
        """Bytes the connection produced by itself (handshake, REFUSE); then forgets them."""
        data = b"".join(self._outbox)
        self._outbox.clear()
        return data

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` (> 0) bytes were written into the last `get_buffer` view: the same as
        `receive_data` with those bytes, without copying them."""
        self._check_usable()
        if self._eof:
            raise LocalProtocolError("data received after EOF")
        self._decoder.buffer_updated(nbytes)

    def feed(self, data: bytes, handle: Callable[[Message], Any]) -> bool:
        """`receive_data` then `process`: the batch fast path for bytes objects."""
        self.receive_data(data)
        return self.process(handle)

    def process(self, handle: Callable[[Message], Any]) -> bool:
        """Authenticated fast path: ``handle`` every complete message received, in order.

        False once the stream ended cleanly (the events API would say ConnectionClosed),
        else True. Raises like `next_event`, after handing over the messages before the bad
        frame; if ``handle`` raises, later messages stay buffered for the next call.
        """
        if self.state is not ConnectionState.AUTHENTICATED:
            if self.state is ConnectionState.CLOSED:
                return False
            self._check_usable()
            raise LocalProtocolError(f"process() needs an authenticated connection, not {self}")

        try:
            self._decoder.drain(handle, decode_message)
            if self._eof:
                self._no_frame()
                return False
        except ProtocolError as exc:
            self._fail(exc)
            raise
        return True

    def send_into(self, out: list[bytes | bytearray], message: Message) -> int:
        """Append ``message``'s frame (1 or 2 parts; the payload is not copied) to ``out``;
        its size in bytes. Raises as `send_parts`."""
        if self.state is not ConnectionState.AUTHENTICATED:
            raise LocalProtocolError(f"cannot send while {self.state.value}")
        if self._outbox:
            out.append(self.data_to_send())
        return self._encoder.encode_into(out, message_control(message), message.payload)

    def send_parts(self, message: Message) -> list[bytes | bytearray]:
        """Frame ``message``: 1 or 2 bytes objects for writelines (the payload is not copied).

        Raises LocalProtocolError unless AUTHENTICATED, TypeError for fields that are not
        msgpack-native, ValueError for a frame over ``max_frame_size``.
        """
        if self.state is not ConnectionState.AUTHENTICATED:
            raise LocalProtocolError(f"cannot send while {self.state.value}")
        parts: list[bytes | bytearray] = []
        self._encoder.encode_into(parts, message_control(message), message.payload)
        if self._outbox:
            parts[0] = self.data_to_send() + parts[0]
        return parts

    def send(self, message: Message) -> bytes:
        """Frame ``message`` as one bytes object (copies the payload; prefer `send_parts`)."""
        return b"".join(self.send_parts(message))

    # -- internals ------------------------------------------------------------------------

    def _no_frame(self) -> Event:
        """The event when no whole frame is buffered: NEED_DATA, or the end of the stream."""
        if not self._eof:
            return NEED_DATA
        if not self._decoder.at_boundary:
            raise ProtocolError("connection closed mid-frame")
        self.state = ConnectionState.CLOSED
        return ConnectionClosed(self.peer is not None)

    def _handshake_event(self) -> Event:
        while True:
            frame = self._decoder.next_frame()
            if frame is None:
                return self._no_frame()
            if frame.payload is not None:  # the decoder refuses these; belt and braces
                raise ProtocolError("frame with a payload before authentication")
            self._queue(self._handshake.receive(frame.control))
            peer = self._handshake.peer
            if peer is not None:
                self._authenticated(peer)
                return HandshakeComplete(peer)

    def _authenticated(self, peer: Identity) -> None:
        self.peer = peer
        self.state = ConnectionState.AUTHENTICATED
        decoder = self._decoder
        decoder.max_frame_size = self.max_frame_size
        decoder.max_control_size = self.max_control_size
        decoder.allow_payload = True

    def _queue(self, controls: list[dict[str, Any]]) -> None:
        self._outbox.extend(self._encoder.encode(control) for control in controls)

    def _fail(self, exc: ProtocolError) -> None:
        if self.state is ConnectionState.HANDSHAKING and not self._handshake.refused_by_peer:
            self._queue([refusal(exc)])
        self.state = ConnectionState.ERROR
        self._error = exc

    def _check_usable(self) -> None:
        if self.state is ConnectionState.ERROR:
            raise LocalProtocolError(f"connection failed earlier: {self._error}")
