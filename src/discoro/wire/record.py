"""AEAD records: how every byte travels after the handshake (AES-256-GCM, sans-I/O).

Layout of one record (network byte order)::

    header (u32): lane (top 8 bits) | ciphertext length (low 24 bits)
    ciphertext:   AES-256-GCM(key, nonce, plaintext, associated data = header) + 16-byte tag

The plaintext of a record is a run of frame bytes (`wire.frames`) of one lane: many small
frames share a record, and a frame bigger than `MAX_PLAINTEXT` spans several records of its
lane. Lanes are independent frame streams: `LANE_CONTROL` (replies, pings), `LANE_DATA`
(user messages) and `LANE_BULK` (large user messages, cut into records of up to
`MAX_BULK_PLAINTEXT` bytes: the fragments). The receiver keeps one frame decoder per lane,
so a control record can overtake the rest of a large data frame, and small messages
overtake a large one.

Invariants:
- Each direction has its own key (from the handshake) and its own record counter, starting at
  0 and never sent: the nonce is the 4-byte direction label + the u64 counter. A record that
  is tampered with (any bit, header included), replayed, reordered, dropped, truncated or
  injected fails its tag (or its length check) and is refused with ProtocolError; its
  plaintext is never handed to a frame decoder, so nothing in it is decoded. After an error
  the reader is unusable.
- A record's plaintext is 1 to `MAX_PLAINTEXT` bytes (`MAX_BULK_PLAINTEXT` on the bulk lane:
  fewer, larger records cost less per byte at both ends); a header announcing more (or
  less) is refused as soon as its 4 bytes arrive, before any of the body is buffered.
- The reader reads a record that is partly received no further than its end (`get_buffer`:
  room for exactly its missing bytes), so a read of a large record ends where it does and
  the receive buffer starts over empty, instead of moving a partial record to its front.
- The writer seals control lane records before data lane ones, at frame boundaries of the
  data lane too (control may overtake a large data frame between two of its records).
  Payloads are sealed from memoryview slices: a large payload is never joined with others.
  Large records are sealed in place into fresh bytes objects (`wire.fresh_bytes`), handed
  out only once whole: no zero fill and no copy of the ciphertext.
  Small frames (`queue_small`, at most `SMALL_FRAME` bytes) are instead copied into a run:
  a bytearray at the tail of their lane that takes the small frames queued after it, until
  it holds a record's worth or a `seal` starts (a run is never written to once a seal may
  have taken or sliced it). A record of many small frames is then sealed from one buffer,
  with no per-frame queue entry and no join.
- Cuts: a record ends before a queued part that does not fit in it whole, and a large part
  (at least `BULK_MIN` bytes) lies in records of its own: it starts a record, and if it
  does not fit, its head fills the record and the rest (a view) starts the next, until its
  last piece, which ends its record. So a large payload's bytes never share a record with
  its frame's header or the next frame: the receiver decrypts each of its records straight
  into the block it collects the payload in (`RecordReader.open_next`), with no copy.
- ``queued`` is the sum of ``pending`` (kept as it changes: the back-pressure check reads it
  after every send).
- Data and bulk lane records alternate (a data record first), so a small message waits for
  at most one bulk record (one fragment) behind a large message queued before it.
- Order per key (`RecordWriter.route`; the connection's key is the destination coroutine):
  a frame only goes on the bulk lane while the data lane holds at most one record's worth
  (behind more it would gain nothing there); a frame whose key has a frame not wholly
  sealed on the bulk lane follows it there, and so does every frame without a key while any
  bulk frame is not wholly sealed. A bulk frame queued while data lane bytes wait completes
  only after they are sealed: a bulk record that could end it gives its turn to the data
  lane (`_bulk_waits`; those bytes may take two records, the rest of a cut part ending its
  own, and the bulk frame may be a single record). So frames with the same key complete
  (and are decoded) in the order they were queued, a frame without a key after everything
  queued before it; only a frame with another key may overtake a large one.
"""

from __future__ import annotations

from collections import deque
from struct import Struct
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from discoro.errors import ProtocolError
from discoro.wire.buffer import ReceiveBuffer
from discoro.wire.fresh_bytes import fresh_bytes

if TYPE_CHECKING:
    from collections.abc import Callable

    from discoro.wire.frames import FrameDecoder

__all__ = [
    "BULK_MIN",
    "HEADER",
    "LANES",
    "LANE_BULK",
    "LANE_CONTROL",
    "LANE_DATA",
    "MAX_BULK_PLAINTEXT",
    "MAX_PLAINTEXT",
    "TAG_SIZE",
    "Cipher",
    "RecordReader",
    "RecordWriter",
]

HEADER = Struct("!I")
TAG_SIZE = 16
MAX_PLAINTEXT = 64 * 1024
#: The bulk lane's records: a small message waits behind at most one of them.
MAX_BULK_PLAINTEXT = 256 * 1024
LANE_DATA = 0
LANE_CONTROL = 1
LANE_BULK = 2
LANES = 3
#: Plaintext bytes a record of each lane holds at most.
_MAX_SIZES = (MAX_PLAINTEXT, MAX_PLAINTEXT, MAX_BULK_PLAINTEXT)
#: Frames at least this big may travel on the bulk lane (`RecordWriter.route`).
BULK_MIN = MAX_PLAINTEXT
_LENGTH_MASK = 0xFFFFFF
_MAX_COUNTER = 2**64 - 1
_HEADER_SIZE = HEADER.size
_Bytes = bytes | bytearray | memoryview
_pack_header = HEADER.pack
#: Bytes of records sealed per `RecordWriter.seal` call at most (about; one record more).
SEAL_BUDGET = 256 * 1024
#: A lone record of at least this many bytes is sealed in place into fresh bytes (below,
#: header + ciphertext, a copy of it, is cheaper).
_FRESH_MIN = 16 * 1024
#: Frames of at most this many bytes may be copied into their lane's run (`queue_small`).
SMALL_FRAME = 2048


class Cipher(Protocol):
    """What a record needs of an AEAD (`AESGCM` has it)."""

    def encrypt(self, nonce: bytes, data: _Bytes, associated_data: bytes) -> bytes: ...

    def encrypt_into(
        self, nonce: bytes, data: _Bytes, associated_data: bytes, buf: bytearray | memoryview
    ) -> object: ...

    def decrypt_into(
        self, nonce: bytes, data: _Bytes, associated_data: bytes, buf: bytearray | memoryview
    ) -> object: ...


def aes_gcm(key: bytes) -> Cipher:
    """The record cipher for a 32-byte session key."""
    if len(key) != 32:
        raise ValueError("a record key is 32 bytes (AES-256)")
    return AESGCM(key)


def _check_direction(direction: bytes) -> bytes:
    if len(direction) != 4:
        raise ValueError("the direction label is 4 bytes")
    return direction


class RecordWriter:
    """Frames in (by lane), sealed records out. One per direction (not thread-safe)."""

    __slots__ = (
        "_bulk_keys",
        "_cipher",
        "_counter",
        "_direction",
        "_ends",
        "_lanes",
        "_runs",
        "_sealed",
        "_tails",
        "_turn",
        "_waits",
        "pending",
        "queued",
    )

    def __init__(self, cipher: Cipher, direction: bytes) -> None:
        self._cipher = cipher
        self._direction = _check_direction(direction)
        self._counter = 0
        self._lanes: tuple[deque[_Bytes], ...] = tuple(deque() for _ in range(LANES))
        self.pending = [0] * LANES  #: plaintext bytes waiting, per lane
        self.queued = 0  #: plaintext bytes waiting, all lanes: ``sum(pending)``
        # per lane: the run of small frames at the tail of its queue that takes more, or None
        self._runs: list[bytearray | None] = [None] * LANES
        # per lane: where each frame not wholly sealed ends, counted in bytes ever queued on
        # the lane, and how many of those bytes were sealed
        self._ends: tuple[deque[int], ...] = tuple(deque() for _ in range(LANES))
        self._sealed = [0] * LANES
        # key -> where its last frame on the bulk lane ends (bytes ever queued on the lane)
        self._bulk_keys: dict[object, int] = {}
        self._turn = LANE_DATA  # which of data and bulk seals the next record when both wait
        self._tails = [False] * LANES  # per lane: its queue starts with the rest of a cut part
        # (where a bulk frame ends, where the data lane ended when it was queued) for each
        # bulk frame queued behind data lane bytes: it completes only after those
        self._waits: deque[tuple[int, int]] = deque()

    def route(self, key: object, size: int) -> int:
        """The lane for a data frame of about ``size`` bytes with ordering ``key`` (None: a
        frame ordered after everything queued before it): see the order invariant above."""
        bulk_pending = self.pending[LANE_BULK]
        keys = self._bulk_keys
        if key is None:  # overtakes nothing: behind any bulk frame not wholly sealed
            return LANE_BULK if bulk_pending else LANE_DATA
        if keys:
            if not bulk_pending:  # every bulk frame is wholly sealed
                keys.clear()
            else:
                end = keys.get(key)
                if end is not None and end > self._sealed[LANE_BULK]:
                    return LANE_BULK
        if size >= BULK_MIN and self.pending[LANE_DATA] <= MAX_PLAINTEXT:
            return LANE_BULK
        return LANE_DATA

    def queue_bulk(self, key: object, encode_into: Callable[..., int], *args: object) -> int:
        """`queue_frame` on the bulk lane, remembering where ``key``'s frame ends."""
        size = self.queue_frame(LANE_BULK, encode_into, *args)
        end = self._sealed[LANE_BULK] + self.pending[LANE_BULK]
        if key is not None:
            self._bulk_keys[key] = end
        if self.pending[LANE_DATA]:
            self._forget_waits()  # so only frames not wholly sealed have one
            self._waits.append((end, self._sealed[LANE_DATA] + self.pending[LANE_DATA]))
        return size

    def _forget_waits(self) -> None:
        """Drop the waits that are over: their data lane bytes are sealed, or their frame."""
        waits, sealed = self._waits, self._sealed
        while waits:
            end, data_end = waits[0]
            if data_end > sealed[LANE_DATA] and end > sealed[LANE_BULK]:
                return
            waits.popleft()

    def _bulk_waits(self) -> bool:
        """Whether the next bulk record may complete a bulk frame queued behind data lane
        bytes that are not sealed yet (then the data lane seals first)."""
        self._forget_waits()
        waits = self._waits
        return bool(waits) and self._sealed[LANE_BULK] + MAX_BULK_PLAINTEXT >= waits[0][0]

    def add(self, lane: int, parts: list[bytes | bytearray]) -> None:
        """Queue one frame's parts (as `FrameEncoder.encode_into` made them) on ``lane``."""
        queue = self._lanes[lane]
        size = 0
        for part in parts:
            if part:
                queue.append(part)
                size += len(part)
        self.pending[lane] += size
        self.queued += size
        self._runs[lane] = None  # frames behind these parts must not go into an earlier run
        self._ends[lane].append(self._sealed[lane] + self.pending[lane])

    def unsent_frames(self, lane: int) -> int:
        """Frames queued on ``lane`` that are not wholly sealed yet (a frame partly sealed
        counts: the peer cannot decode it without the rest)."""
        self._forget_sealed(lane)
        return len(self._ends[lane])

    @property
    def empty(self) -> bool:
        return not self.queued

    def queue_frame(self, lane: int, encode_into: Callable[..., int], *args: object) -> int:
        """Queue the frame ``encode_into(queue, *args)`` appends (a `FrameEncoder` method)
        on ``lane``, without an intermediate list; its size."""
        size: int = encode_into(self._lanes[lane], *args)
        self._runs[lane] = None  # the frame's parts follow the run: it takes no more
        pending = self.pending[lane] + size
        self.pending[lane] = pending
        self.queued += size
        self._ends[lane].append(self._sealed[lane] + pending)  # pruned by `seal`
        return size

    def _forget_sealed(self, lane: int) -> None:
        """Drop the ends of ``lane``'s frames that are wholly sealed (after a seal: the
        deque holds only frames still queued, so it stays bounded by them)."""
        ends, sealed = self._ends[lane], self._sealed[lane]
        while ends and ends[0] <= sealed:
            ends.popleft()

    def queue_small(self, lane: int, encode_onto: Callable[..., int], *args: object) -> int:
        """Queue the frame ``encode_onto(run, *args)`` appends to a bytearray (a `FrameEncoder`
        ``*_onto`` method; the frame must be at most `SMALL_FRAME` bytes) on ``lane``, in the
        lane's run of small frames; its size."""
        run = self._runs[lane]
        if run is None or len(run) >= MAX_PLAINTEXT:
            run = self._runs[lane] = bytearray()
            self._lanes[lane].append(run)
        size: int = encode_onto(run, *args)
        pending = self.pending[lane] + size
        self.pending[lane] = pending
        self.queued += size
        self._ends[lane].append(self._sealed[lane] + pending)  # pruned by `seal`
        return size

    def seal(self, budget: int = SEAL_BUDGET) -> bytes | bytearray | None:
        """Records for (about) ``budget`` bytes of what is queued, control lane first, as one
        bytearray to write; None when nothing is queued."""
        runs = self._runs
        runs[0] = runs[1] = runs[2] = None  # what this seal takes or slices takes no more
        pending = self.pending
        data, control, bulk = pending  # by lane number
        if not bulk and (not control or not data):  # the common case: one lane, one record
            size = control or data
            if size and size <= MAX_PLAINTEXT:
                lane = LANE_CONTROL if control else LANE_DATA
                records = self._seal_lane(lane, size)
                self._ends[lane].clear()  # every frame of the lane is sealed
                return records
        plan: list[tuple[int, list[_Bytes], int]] = []
        total = 0
        while total < budget:
            if pending[LANE_CONTROL]:
                lane = LANE_CONTROL
            elif pending[LANE_DATA] and (
                self._turn == LANE_DATA or not pending[LANE_BULK] or self._bulk_waits()
            ):
                lane = LANE_DATA
                self._turn = LANE_BULK
            elif pending[LANE_BULK]:
                lane = LANE_BULK
                self._turn = LANE_DATA
            else:
                break
            pieces, size = self._take(lane)
            plan.append((lane, pieces, size))
            total += _HEADER_SIZE + size + TAG_SIZE
        if not plan:
            return None
        out: bytes | bytearray
        if fresh_bytes is not None:  # sealed into in place: no zero fill of the records
            out, view = fresh_bytes(total)
        else:
            out = bytearray(total)
            view = memoryview(out)
        offset = 0
        with view:
            for lane, pieces, size in plan:
                offset = self._seal_one(view, offset, lane, pieces, size)
        for lane in range(LANES):
            self._forget_sealed(lane)
        return out

    def _seal_lane(self, lane: int, size: int) -> bytes:
        """Everything queued on ``lane`` (at most MAX_PLAINTEXT bytes) as one record."""
        queue = self._lanes[lane]
        plaintext = queue[0] if len(queue) == 1 else b"".join(queue)
        queue.clear()
        self._tails[lane] = False
        self.pending[lane] = 0
        self.queued -= size
        self._sealed[lane] += size
        counter = self._counter
        if counter >= _MAX_COUNTER:
            raise ProtocolError("record counter exhausted: reconnect")
        self._counter = counter + 1
        header = _pack_header((lane << 24) | (size + TAG_SIZE))
        nonce = self._direction + counter.to_bytes(8, "big")
        if size < _FRESH_MIN or fresh_bytes is None:
            return header + self._cipher.encrypt(nonce, plaintext, header)
        out, view = fresh_bytes(_HEADER_SIZE + size + TAG_SIZE)  # sealed in place, no join
        with view:
            view[:_HEADER_SIZE] = header
            self._cipher.encrypt_into(nonce, plaintext, header, view[_HEADER_SIZE:])
        return out

    def _take(self, lane: int) -> tuple[list[_Bytes], int]:
        """Up to a record's worth of bytes (`_MAX_SIZES`) from the front of ``lane``'s queue,
        cut where a large part begins and where its last piece ends (see "Cuts" above)."""
        queue = self._lanes[lane]
        pieces: list[_Bytes] = []
        room = most = _MAX_SIZES[lane]
        tails = self._tails
        while queue and room:
            part = queue[0]
            size = len(part)
            big = size >= BULK_MIN or tails[lane]  # a large part, or the rest of one
            if pieces and (big or size > room):
                break  # it starts the next record
            if size <= room:
                queue.popleft()
                pieces.append(part)
                room -= size
                if big:  # ... and ends it
                    tails[lane] = False
                    break
            else:  # a large part: seal its head now, keep the rest (a view, no copy)
                view = part if type(part) is memoryview else memoryview(part)
                pieces.append(view[:room])
                queue[0] = view[room:]
                tails[lane] = True
                room = 0
        size = most - room
        self.pending[lane] -= size
        self.queued -= size
        self._sealed[lane] += size
        return pieces, size

    def _seal_one(
        self, view: memoryview, offset: int, lane: int, pieces: list[_Bytes], size: int
    ) -> int:
        counter = self._counter
        if counter >= _MAX_COUNTER:
            raise ProtocolError("record counter exhausted: reconnect")
        self._counter = counter + 1
        header = HEADER.pack((lane << 24) | (size + TAG_SIZE))
        view[offset : offset + _HEADER_SIZE] = header
        start = offset + _HEADER_SIZE
        end = start + size + TAG_SIZE
        plaintext = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self._cipher.encrypt_into(
            self._direction + counter.to_bytes(8, "big"), plaintext, header, view[start:end]
        )
        return end


class RecordReader:
    """Sealed records in (bytes from the stream), plaintext out into one frame decoder per
    lane. One per direction (not thread-safe)."""

    __slots__ = ("_buffer", "_cipher", "_counter", "_direction", "decoders")

    def __init__(
        self, cipher: Cipher, direction: bytes, decoders: tuple[FrameDecoder, ...]
    ) -> None:
        if len(decoders) != LANES:
            raise ValueError(f"one frame decoder per lane ({LANES})")
        self._cipher = cipher
        self._direction = _check_direction(direction)
        self._counter = 0
        self._buffer = ReceiveBuffer()
        self.decoders = decoders

    @property
    def at_boundary(self) -> bool:
        """True when no partial record or frame is buffered (an EOF here is clean)."""
        return self._buffer.empty and all(d.at_boundary for d in self.decoders)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add (a copy of) received bytes."""
        self._buffer.feed(data)

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Room for the socket to write received bytes into; then `buffer_updated`. While a
        record is partly received, room for exactly the rest of it (see the invariants)."""
        buffer = self._buffer
        pos = buffer._pos
        available = buffer._end - pos
        if available >= _HEADER_SIZE:
            (word,) = HEADER.unpack_from(buffer._data, pos)
            lane = word >> 24
            missing = _HEADER_SIZE + (word & _LENGTH_MASK) - available
            # a header that `open_next` refuses gets the usual room (it fails there)
            if missing > 0 and lane < LANES and word & _LENGTH_MASK <= _MAX_SIZES[lane] + TAG_SIZE:
                return buffer.room_for(missing)
        return buffer.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self._buffer.buffer_updated(nbytes)

    def open_next(self) -> int:
        """Open the next complete record into its lane's decoder; its lane, or -1 when no
        whole record is buffered. Raises ProtocolError for a bad record."""
        buffer = self._buffer
        pos = buffer._pos
        available = buffer._end - pos
        if available < _HEADER_SIZE:
            return -1
        data = buffer._data
        (word,) = HEADER.unpack_from(data, pos)
        lane: int = word >> 24
        length: int = word & _LENGTH_MASK
        if lane >= LANES or not TAG_SIZE < length <= _MAX_SIZES[lane] + TAG_SIZE:
            raise ProtocolError(
                f"bad record header (lane {lane}, {length} bytes): tampered or not discoro"
            )
        if available < _HEADER_SIZE + length:
            return -1
        counter = self._counter
        nonce = self._direction + counter.to_bytes(8, "big")
        size = length - TAG_SIZE
        decoder = self.decoders[lane]
        start = pos + _HEADER_SIZE
        with memoryview(data) as view:
            sealed = view[start : start + length]
            header = bytes(view[pos:start])
            room = decoder.get_buffer(size)
            try:
                if len(room) >= size:
                    self._cipher.decrypt_into(nonce, sealed, header, room[:size])
                    opened: bytearray | None = None
                else:  # the decoder is collecting a large block with less room left
                    opened = bytearray(size)
                    self._cipher.decrypt_into(nonce, sealed, header, opened)
            except InvalidTag:
                raise ProtocolError(
                    f"record {counter} failed authentication "
                    f"(tampered, replayed, reordered, dropped or injected)"
                ) from None
        # only now, with the tag verified, does the decoder see the plaintext
        buffer._pos = start + length
        self._counter = counter + 1
        if opened is None:
            decoder.buffer_updated(size)
        else:
            decoder.feed(opened)
        return lane

    def drain(
        self,
        handle: Callable[..., object],
        decode: Callable[..., object],
        decode_raw: Callable[..., object] | None = None,
        handle_run: Callable[[bytes, list[bytes]], object] | None = None,
    ) -> None:
        """``handle(decode(control, payload))`` for every complete frame (``decode_raw``,
        ``handle_run``: see `FrameDecoder.drain`): first what the decoders still hold, then
        record by record. Raises like `open_next` and the frame decoders, after handing over
        what came before the bad record or frame."""
        decoders = self.decoders
        for decoder in decoders:
            if not decoder.at_boundary:  # frames left over from an earlier call
                decoder.drain(handle, decode, decode_raw, handle_run)
        while (lane := self.open_next()) >= 0:
            decoders[lane].drain(handle, decode, decode_raw, handle_run)
