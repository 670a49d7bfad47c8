"""Connection: one side of a discoro stream, without I/O (in the manner of h11).

The I/O shell owns the socket and loops::

    conn.start()                          # client: queues its HELLO; server: no-op
    write(conn.data_to_send())
    on bytes b (b"" at EOF):  conn.receive_data(b)
        while (event := conn.next_event()) is not NEED_DATA:
            handle(event)                  # ConnectionClosed: stop reading
        write(conn.data_to_send())
    to send m after HandshakeComplete:  write(conn.send(m))

A shell may also let the socket write into the connection's own buffer (``recv_into``, as
``asyncio.BufferedProtocol`` does): ``view = conn.get_buffer()``, read into it, then
``conn.buffer_updated(n)`` instead of ``receive_data``. Once authenticated, it may take the
batch fast path: ``conn.process(handle)`` calls ``handle(message)`` for every complete
message buffered, in one loop, with no event objects, and returns False once the peer closed
the stream cleanly (``conn.feed(b, handle)`` is ``receive_data`` + ``process``). To send in
batches, ``conn.queue(m, lane)`` queues m's frame on a lane and ``conn.seal()`` turns what is
queued into sealed records (control lane first), a bounded batch per call.

Invariants:
- States go HANDSHAKING -> AUTHENTICATED -> CLOSED, or to ERROR from anywhere but CLOSED.
- Before authentication frames are limited to `HANDSHAKE_MAX_FRAME` bytes, may carry no
  payload, and may only be handshake ops: no user byte is handed up (let alone unpickled)
  before the peer proved it holds the secret.
- After authentication every byte, both ways, travels in AEAD records (`wire.record`) keyed
  by the handshake's session keys: a byte the peer did not seal (injected, flipped, replayed,
  reordered) fails the connection, and nothing in its record is decoded. Bytes that arrived
  behind the handshake's last frame are taken as records.
- Every failure is raised as a ProtocolError (or subclass) from `next_event`; the connection
  is then in state ERROR and every later call except `data_to_send` raises
  LocalProtocolError. If it failed during the handshake, `data_to_send` then holds a REFUSE
  frame telling the peer why: write it before closing.
- `seal` (and `send`) put any bytes the connection queued itself first, so they are never
  overtaken.
"""

from __future__ import annotations

import enum
from collections import deque
from functools import partial
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
from discoro.wire.handshake import DIRECTIONS, HANDSHAKE_MAX_FRAME, Handshake, Role, refusal
from discoro.wire.messages import KnownControls, Message, decode_message
from discoro.wire.record import (
    BULK_MIN,
    LANE_BULK,
    LANE_DATA,
    LANES,
    SMALL_FRAME,
    RecordReader,
    RecordWriter,
    aes_gcm,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from discoro.wire.identity import Identity

__all__ = ["ORDER_KEY", "RAW_KEY", "Connection", "ConnectionState"]

#: The field whose value orders data frames (the destination coroutine's id): frames with
#: the same value arrive in the order they were queued; a large frame may be overtaken by
#: frames with other values, never by a frame without one (`record.RecordWriter.route`).
ORDER_KEY = "c"
#: The field that says a payload is the message itself (raw bytes, `net.payloads`): such a
#: payload is handed up as ``bytes``, a large one collected into a bytes object in place
#: (`ReceiveBuffer.take`), so the message layer need not copy it into one.
RAW_KEY = "b"


def _raw_payload(control: dict[str, object]) -> bool:
    """`FrameDecoder.bytes_payload`: the frame's fields have `RAW_KEY`."""
    fields = control.get("f")
    return type(fields) is dict and bool(fields.get(RAW_KEY))


_OTHER = {Role.CLIENT: Role.SERVER, Role.SERVER: Role.CLIENT}
#: A frame whose payload (plus control) is at most this big is copied into its lane's run of
#: small frames (`RecordWriter.queue_small`): the frame header is 12 bytes, control maps of
#: small messages a few dozen.
_SMALL_PAYLOAD = SMALL_FRAME - 512


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
        master: bytes,
        identity: Identity,
        *,
        max_frame_size: int = MAX_FRAME_SIZE,
        max_control_size: int = MAX_CONTROL_SIZE,
    ) -> None:
        """``master`` is the cluster's master key (`keys.stretch` of the secret)."""
        self.role = role
        self.identity = identity
        self.state = ConnectionState.HANDSHAKING
        self.peer: Identity | None = None
        self.link_id = b""  # once authenticated: the same at both ends (`Handshake.link_id`)
        self.max_frame_size = max_frame_size
        self.max_control_size = max_control_size
        self._handshake = Handshake(role, master, identity)
        self._decoder = FrameDecoder(HANDSHAKE_MAX_FRAME, HANDSHAKE_MAX_FRAME, allow_payload=False)
        self._encoder = FrameEncoder(max_frame_size, max_control_size)
        self._reader: RecordReader | None = None
        self._writer: RecordWriter | None = None
        self._known_controls = KnownControls()  # the receive side's message decoder
        self._received: deque[Message] = deque()  # decoded, not yet returned by next_event
        self._outbox: list[bytes] = []
        self._started = False
        self._eof = False
        self._error: ProtocolError | None = None
        self._deferred: ProtocolError | None = None
        #: Room to receive into (e.g. with ``recv_into``); then call `buffer_updated`. Always
        #: usable: it only hands out room.
        self.get_buffer: Callable[..., memoryview] = self._decoder.get_buffer

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
        if not data:
            self._eof = True
        elif self._reader is not None:
            self._reader.feed(data)
        else:
            self._decoder.feed(data)

    def next_event(self) -> Event:
        """The next event, or NEED_DATA; raises ProtocolError when the peer broke the rules."""
        if self.state is ConnectionState.AUTHENTICATED:
            received = self._received
            if not received:
                try:
                    self._drain(received.append)
                except ProtocolError as exc:
                    if not received:
                        self._fail(exc)
                        raise
                    self._deferred = exc  # raised once the messages before it were returned
            if received:
                return MessageReceived(received.popleft())
            deferred = self._deferred
            if deferred is not None:
                self._deferred = None
                self._fail(deferred)
                raise deferred
            try:
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
        if self._reader is not None:
            self._reader.buffer_updated(nbytes)
        else:
            self._decoder.buffer_updated(nbytes)

    def feed(self, data: bytes, handle: Callable[[Message], Any]) -> bool:
        """`receive_data` then `process`: the batch fast path for bytes objects."""
        self.receive_data(data)
        return self.process(handle)

    def process(
        self,
        handle: Callable[[Message], Any],
        handle_run: Callable[[Message, list[bytes]], object] | None = None,
    ) -> bool:
        """Authenticated fast path: ``handle`` every complete message received, in order.

        ``handle_run``: consecutive messages that differ only in their payloads (same
        control bytes: a stream of sends to one coroutine) may instead come as one
        ``handle_run(message, payloads)`` in their place in the order: ``message`` without
        a payload, ``payloads`` the runs' (bytes), to be taken as ``handle`` would take
        each message with its payload (`KnownControls.run`).

        False once the stream ended cleanly (the events API would say ConnectionClosed),
        else True. Raises like `next_event`, after handing over the messages before the bad
        record or frame; if ``handle`` raises, later messages stay buffered for the next call.
        """
        if self.state is not ConnectionState.AUTHENTICATED:
            if self.state is ConnectionState.CLOSED:
                return False
            self._check_usable()
            raise LocalProtocolError(f"process() needs an authenticated connection, not {self}")
        try:
            received = self._received
            while received:
                handle(received.popleft())
            if handle_run is None:
                self._drain(handle)
            else:
                reader = self._reader
                assert reader is not None
                known = self._known_controls
                reader.drain(handle, decode_message, known, partial(known.run, handle, handle_run))
            if self._eof:
                self._no_frame()
                return False
        except ProtocolError as exc:
            self._fail(exc)
            raise
        return True

    def queue(
        self, message: Message, lane: int = LANE_DATA, more: tuple[bytes | memoryview, ...] = ()
    ) -> int:
        """Queue ``message``'s frame on ``lane`` (the payload is not copied; ``more``: buffers
        that follow it in the frame's payload, not copied either); its size in bytes. A data
        lane frame with an `ORDER_KEY` field may go on the bulk lane instead. `seal`
        makes the records. Raises LocalProtocolError unless AUTHENTICATED, TypeError for
        fields that are not msgpack-native, ValueError for a frame over ``max_frame_size``."""
        writer = self._writer
        if writer is None or self.state is not ConnectionState.AUTHENTICATED:
            raise LocalProtocolError(f"cannot send while {self.state.value}")
        payload = message.payload
        fields = message.fields
        # `message_control`, inlined (once per frame sent)
        control: dict[str, object] = (
            {"op": message.op, "f": fields} if fields else {"op": message.op}
        )
        if message.rid:
            control["rid"] = message.rid
        size = 0 if payload is None else len(payload)
        if more:
            size += sum(len(part) for part in more)
        if lane == LANE_DATA and (size >= BULK_MIN or writer.pending[LANE_BULK]):
            key = fields.get(ORDER_KEY)
            if writer.route(key, size) == LANE_BULK:
                return writer.queue_bulk(key, self._encoder.encode_into, control, payload, more)
        if size <= _SMALL_PAYLOAD and not more:
            return writer.queue_small(lane, self._encoder.encode_onto, control, payload)
        return writer.queue_frame(lane, self._encoder.encode_into, control, payload, more)

    def queue_packed(
        self,
        body: bytes,
        payload: bytes | bytearray,
        order_key: object,
        more: tuple[bytes | memoryview, ...] = (),
    ) -> int:
        """`queue` on the data lane for a message whose control map is already packed into
        ``body`` (`safepack.pack`) and whose `ORDER_KEY` field is ``order_key``: a sender that
        sends the same control again and again builds no message and packs nothing."""
        writer = self._writer
        if writer is None or self.state is not ConnectionState.AUTHENTICATED:
            raise LocalProtocolError(f"cannot send while {self.state.value}")
        size = len(payload)
        if more:
            size += sum(len(part) for part in more)
        elif size + len(body) <= _SMALL_PAYLOAD and not writer.pending[LANE_BULK]:
            return writer.queue_small(LANE_DATA, self._encoder.encode_packed_onto, body, payload)
        encode = self._encoder.encode_packed_into
        if (size >= BULK_MIN or writer.pending[LANE_BULK]) and writer.route(
            order_key, size
        ) == LANE_BULK:
            return writer.queue_bulk(order_key, encode, body, payload, more)
        return writer.queue_frame(LANE_DATA, encode, body, payload, more)

    def unsent(self, lane: int = LANE_DATA) -> int:
        """Frames queued on ``lane`` and not wholly sealed yet (what a torn-down stream
        drops); for `LANE_DATA`, the bulk lane's frames count too (user data both)."""
        writer = self._writer
        if writer is None:
            return 0
        if lane == LANE_DATA:
            return writer.unsent_frames(LANE_DATA) + writer.unsent_frames(LANE_BULK)
        return writer.unsent_frames(lane)

    @property
    def queued(self) -> int:
        """Bytes of frames queued and not sealed yet."""
        return 0 if self._writer is None else self._writer.queued

    def seal(self, budget: int | None = None) -> bytes | bytearray | None:
        """Sealed records for (about) ``budget`` bytes of what is queued (control lane
        first), behind any bytes the connection queued itself; None when nothing is."""
        writer = self._writer
        records = None
        if writer is not None:
            records = writer.seal() if budget is None else writer.seal(budget)
        if self._outbox:
            own = self.data_to_send()
            return own if records is None else own + records
        return records

    def send(self, message: Message, lane: int = LANE_DATA) -> bytes:
        """``message`` (and anything queued before it) as sealed records, in one bytes
        object: the simple API; the link uses `queue` and `seal`."""
        self.queue(message, lane)
        out = []
        while (chunk := self.seal()) is not None:
            out.append(chunk)
        return b"".join(out)

    # -- internals ------------------------------------------------------------------------

    def _drain(self, handle: Callable[[Message], object]) -> None:
        reader = self._reader
        assert reader is not None
        reader.drain(handle, decode_message, self._known_controls)

    def _no_frame(self) -> Event:
        """The event when no whole frame is buffered: NEED_DATA, or the end of the stream."""
        if not self._eof:
            return NEED_DATA
        if self._reader is not None:
            if not self._reader.at_boundary:
                raise ProtocolError("connection closed mid-record (truncated stream)")
        elif not self._decoder.at_boundary:
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
        self.link_id = self._handshake.link_id
        self.state = ConnectionState.AUTHENTICATED
        send_key, receive_key = self._handshake.session_keys()
        decoders = tuple(
            FrameDecoder(self.max_frame_size, self.max_control_size) for _ in range(LANES)
        )
        for decoder in decoders:
            decoder.bytes_payload = _raw_payload
        reader = RecordReader(aes_gcm(receive_key), DIRECTIONS[_OTHER[self.role]], decoders)
        self._writer = RecordWriter(aes_gcm(send_key), DIRECTIONS[self.role])
        buffered = self._decoder._buffer
        if len(buffered):  # records that arrived right behind the handshake's last frame
            reader.feed(buffered.read(len(buffered)))
        self._reader = reader
        self.get_buffer = reader.get_buffer

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
