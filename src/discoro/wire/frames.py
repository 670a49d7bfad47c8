"""Frame codec: the unit every connection sends, after and during the handshake.

Layout (network byte order, struct ``"!2sBBII"``, 12 bytes), then the body::

    magic b"DC" | format 1 (u8) | flags (u8) | control length (u32) | payload length (u32)
    control: one msgpack map with str keys (control length bytes)
    payload: opaque bytes (payload length bytes), present only when flags has HAS_PAYLOAD

Invariants:
- A bad magic, format or flag byte, a frame or control bigger than the limits, or a payload
  where none is allowed is refused as soon as the header (or its first bytes) arrives,
  before any of the body is buffered.
- The control map is decoded only through `safepack` (never pickle); the payload is never
  decoded here: it is handed up as bytes copied once from the receive buffer, or, when it
  is large (``buffer.COLLECT_THRESHOLD``), as the bytearray the socket received it into
  (or the bytes object, for frames `FrameDecoder.bytes_payload` says want bytes).
- Limits may be changed between frames (the connection raises them after authenticating).
  The receive buffer's room follows ``max_frame_size`` (`ReceiveBuffer.chunk`): a decoder
  limited to small frames never holds more than about one frame's worth of memory.
- `FrameDecoder.drain` decodes every complete frame in the buffer in one tight loop (the
  per-chunk hot path); it applies exactly the checks of `next_frame` and falls back to it
  for partial and large frames, so both give the same frames and the same errors.
"""

from __future__ import annotations

from functools import partial
from struct import Struct
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from discoro.errors import ProtocolError
from discoro.wire.buffer import CHUNK, ReceiveBuffer
from discoro.wire.safepack import new_packer, unpack_map

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "FRAME_FORMAT",
    "HAS_PAYLOAD",
    "HEADER",
    "MAGIC",
    "MAX_CONTROL_SIZE",
    "MAX_FRAME_SIZE",
    "Frame",
    "FrameDecoder",
    "FrameEncoder",
    "encode_frame",
]

MAGIC = b"DC"
FRAME_FORMAT = 1
HAS_PAYLOAD = 0x01
HEADER = Struct("!2sBBII")
MAX_FRAME_SIZE = 64 * 1024 * 1024  # control + payload
MAX_CONTROL_SIZE = 1024 * 1024

_PREFIX = MAGIC + bytes([FRAME_FORMAT])
_HEADER_SIZE = HEADER.size
_pack_header = HEADER.pack
_unpack_header = HEADER.unpack_from
# The header as `_drain_whole` reads it: magic and format as one prefix to compare.
_unpack_prefixed = Struct("!3sBII").unpack_from
_SMALL_PAYLOAD = 4096  # below this a payload is copied out of a bytearray slice (faster)


class Frame(NamedTuple):
    """One decoded frame: its control map and its payload (None when it had none; a
    bytearray when it was large: see the module docstring)."""

    control: dict[str, Any]
    payload: bytes | bytearray | None = None


def _limit_problem(control_len: int, payload_len: int, max_frame: int, max_control: int) -> str:
    """Why a frame of these sizes is refused, or "" when it is within the limits."""
    if control_len > max_control:
        return f"frame control of {control_len} bytes exceeds limit {max_control}"
    if control_len + payload_len > max_frame:
        return f"frame of {control_len + payload_len} bytes exceeds limit {max_frame}"
    return ""


_new_frame = tuple.__new__  # Frame(...) without NamedTuple's Python-level __new__


class FrameEncoder:
    """Turns (control map, payload) into frame bytes. One per connection (not thread-safe)."""

    __slots__ = ("_pack", "max_control_size", "max_frame_size")

    def __init__(
        self, max_frame_size: int = MAX_FRAME_SIZE, max_control_size: int = MAX_CONTROL_SIZE
    ) -> None:
        self.max_frame_size = max_frame_size
        self.max_control_size = max_control_size
        self._pack = new_packer().pack

    def encode_parts(
        self, control: dict[str, Any], payload: bytes | bytearray | None = None
    ) -> list[bytes | bytearray]:
        """``[header + control]`` or ``[header + control, payload]``, ready for writelines.

        The payload is not copied. Raises TypeError for a control that is not msgpack-native,
        ValueError for a frame over the limits.
        """
        body = self._pack(control)
        control_len = len(body)
        if payload is None:
            payload_len = flags = 0
        else:
            payload_len = len(payload)
            flags = HAS_PAYLOAD
        problem = _limit_problem(
            control_len, payload_len, self.max_frame_size, self.max_control_size
        )
        if problem:
            raise ValueError(problem)
        head = _pack_header(MAGIC, FRAME_FORMAT, flags, control_len, payload_len) + body
        return [head, payload] if payload else [head]

    def encode_into(
        self,
        out: list[bytes | bytearray | memoryview],
        control: dict[str, Any],
        payload: bytes | bytearray | None = None,
        more: tuple[bytes | memoryview, ...] = (),
    ) -> int:
        """Append the frame's parts to ``out`` (as `encode_parts`); return its size in bytes.

        ``more``: buffers that follow ``payload`` in the frame's payload, each its own part
        (never joined: out-of-band pickle buffers); only with a non-empty ``payload``."""
        return self.encode_packed_into(out, self._pack(control), payload, more)

    def encode_packed_into(
        self,
        out: list[bytes | bytearray | memoryview],
        body: bytes,
        payload: bytes | bytearray | None = None,
        more: tuple[bytes | memoryview, ...] = (),
    ) -> int:
        """`encode_into` for a control map already packed into ``body`` (a sender that sends
        the same control again and again packs it once: `safepack.pack`)."""
        control_len = len(body)
        if payload:
            payload_len = len(payload)
            if more:
                payload_len += sum(len(part) for part in more)
            if control_len > self.max_control_size or control_len + payload_len > (
                self.max_frame_size
            ):
                raise ValueError(
                    _limit_problem(
                        control_len, payload_len, self.max_frame_size, self.max_control_size
                    )
                )
            out.append(
                _pack_header(MAGIC, FRAME_FORMAT, HAS_PAYLOAD, control_len, payload_len) + body
            )
            out.append(payload)
            if more:
                out.extend(part for part in more if len(part))
            return _HEADER_SIZE + control_len + payload_len
        if control_len > self.max_control_size or control_len > self.max_frame_size:
            raise ValueError(
                _limit_problem(control_len, 0, self.max_frame_size, self.max_control_size)
            )
        flags = 0 if payload is None else HAS_PAYLOAD
        out.append(_pack_header(MAGIC, FRAME_FORMAT, flags, control_len, 0) + body)
        return _HEADER_SIZE + control_len

    def encode_onto(
        self, out: bytearray, control: dict[str, object], payload: bytes | bytearray | None = None
    ) -> int:
        """`encode_into` for a small frame: its bytes appended to ``out`` (copied)."""
        return self.encode_packed_onto(out, self._pack(control), payload)

    def encode_packed_onto(
        self, out: bytearray, body: bytes, payload: bytes | bytearray | None = None
    ) -> int:
        """`encode_packed_into` for a small frame (no ``more``): its bytes appended to
        ``out`` (copied); its size. Raises as `encode_packed_into`, leaving ``out`` as it was."""
        control_len = len(body)
        if control_len > self.max_control_size:
            raise ValueError(
                _limit_problem(control_len, 0, self.max_frame_size, self.max_control_size)
            )
        if payload is None:
            payload_len = flags = 0
        else:
            payload_len = len(payload)
            flags = HAS_PAYLOAD
        if control_len + payload_len > self.max_frame_size:
            raise ValueError(
                _limit_problem(control_len, payload_len, self.max_frame_size, self.max_control_size)
            )
        out += _pack_header(MAGIC, FRAME_FORMAT, flags, control_len, payload_len)
        out += body
        if payload:
            out += payload
        return _HEADER_SIZE + control_len + payload_len

    def encode(self, control: dict[str, Any], payload: bytes | None = None) -> bytes:
        """The whole frame as one bytes object (copies the payload; fine when small)."""
        return b"".join(self.encode_parts(control, payload))


def encode_frame(control: dict[str, Any], payload: bytes | None = None) -> bytes:
    """Convenience: encode one frame with default limits."""
    return FrameEncoder().encode(control, payload)


def _unpack_then(
    decode: Callable[..., object],
    control: memoryview,
    payload: bytes | None,
) -> object:
    """``decode`` of the control map in ``control`` (`FrameDecoder.drain` without a cache)."""
    return decode(unpack_map(control, "frame control"), payload)


class FrameDecoder:
    """Turns received bytes into `Frame` objects, one per `next_frame` call."""

    __slots__ = (
        "_buffer",
        "_control",
        "_control_len",
        "_max_frame_size",
        "_payload_len",
        "_raw",
        "_stage",
        "allow_payload",
        "bytes_payload",
        "max_control_size",
    )

    _HEADER, _CONTROL, _PAYLOAD = range(3)

    def __init__(
        self,
        max_frame_size: int = MAX_FRAME_SIZE,
        max_control_size: int = MAX_CONTROL_SIZE,
        allow_payload: bool = True,
    ) -> None:
        self._buffer = ReceiveBuffer()
        self.max_frame_size = max_frame_size
        self.max_control_size = max_control_size
        self.allow_payload = allow_payload
        self._stage = self._HEADER
        self._control_len = 0
        self._payload_len = -1  # -1: the frame being read has no payload
        self._raw = False  # the payload being collected is handed up as bytes
        #: Given a frame's control map, whether its payload is wanted as ``bytes`` (a large
        #: one is then collected into a bytes object, not a bytearray: `ReceiveBuffer.take`).
        self.bytes_payload: Callable[[dict[str, object]], bool] | None = None
        self._control: dict[str, Any] = {}

    @property
    def max_frame_size(self) -> int:
        return self._max_frame_size

    @max_frame_size.setter
    def max_frame_size(self, value: int) -> None:
        self._max_frame_size = value
        # room for one whole frame (and at least a page): more would be memory the peer
        # can make us hold without ever being able to use it
        self._buffer.chunk = max(4096, min(CHUNK, value + _HEADER_SIZE))

    @property
    def at_boundary(self) -> bool:
        """True when no partial frame is buffered (an EOF here is clean)."""
        return self._stage == self._HEADER and self._buffer.empty

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add (a copy of) received bytes."""
        self._buffer.feed(data)

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Room for the socket to write received bytes into (see `ReceiveBuffer`)."""
        return self._buffer.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` bytes were written into the last `get_buffer` view."""
        self._buffer.buffer_updated(nbytes)

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None when more data is needed.

        Raises ProtocolError when the bytes cannot be a valid frame; the decoder is then
        unusable (the stream has lost its framing).
        """
        buffer = self._buffer
        if self._stage == self._HEADER:
            header = buffer.unpack(HEADER)
            if header is None:
                self._check_prefix()
                return None
            magic, fmt, flags, control_len, payload_len = header
            if (
                magic != MAGIC
                or fmt != FRAME_FORMAT
                or flags & ~HAS_PAYLOAD
                or not 0 < control_len <= self.max_control_size
                or control_len + payload_len > self.max_frame_size
                or (payload_len and not flags)
                or (flags and not self.allow_payload)
            ):
                self._refuse_header(magic, fmt, flags, control_len, payload_len)
            self._control_len = control_len
            self._payload_len = payload_len if flags else -1
            self._stage = self._CONTROL
        if self._stage == self._CONTROL:
            if len(buffer) < self._control_len:
                return None
            self._control = unpack_map(buffer.read(self._control_len), "frame control")
            if self._payload_len < 0:
                self._stage = self._HEADER
                return _new_frame(Frame, (self._control, None))
            self._stage = self._PAYLOAD
            wants = self.bytes_payload
            self._raw = wants is not None and wants(self._control)
        payload = buffer.take(self._payload_len, self._raw)
        if payload is None:
            return None
        self._stage = self._HEADER
        return _new_frame(Frame, (self._control, payload))

    def drain(
        self,
        handle: Callable[[Any], Any],
        decode: Callable[[dict[str, Any], bytes | bytearray | None], Any] = Frame,
        decode_raw: Callable[[memoryview, bytes | None], object] | None = None,
        handle_run: Callable[[bytes, list[bytes]], object] | None = None,
    ) -> None:
        """Call ``handle(decode(control, payload))`` for every complete frame buffered, in
        order (``decode`` defaults to making a `Frame`).

        ``handle_run``: frames that lie whole in the buffer, carry a payload and whose control
        bytes are those of the frame handed up just before them are gathered into a run:
        ``handle_run(control bytes, payloads)`` once for the run, in their place in the order,
        instead of ``handle`` per frame (it must do what ``handle(decode_raw(control,
        payload))`` would do for each payload, in order).

        ``decode_raw``: for frames that lie whole in the buffer, ``decode_raw(control bytes,
        payload)`` instead, which must decode the control bytes with `unpack_map` (or give
        what it would: a cache of earlier results) and then do what ``decode`` does.

        Raises ProtocolError as `next_frame` does, after the frames before the bad one were
        handed over. If ``handle`` or ``decode`` (or ``handle_run``) raises, the frames after
        that one (that run) stay buffered.
        """
        buffer = self._buffer
        if decode_raw is None:
            decode_raw = partial(_unpack_then, decode)
        while True:
            if self._stage == self._HEADER and buffer._end - buffer._pos >= _HEADER_SIZE:
                if handle_run is None:
                    self._drain_whole(buffer, handle, decode_raw)
                else:
                    self._drain_runs(buffer, handle, decode_raw, handle_run)
            frame = self.next_frame()  # a frame that is partial, large, or refused
            if frame is None:
                return
            handle(decode(frame[0], frame[1]))
            frame = None  # held no longer: its payload's block may be collected into again

    def _drain_whole(
        self,
        buffer: ReceiveBuffer,
        handle: Callable[[Any], Any],
        decode_raw: Callable[[memoryview, bytes | None], object],
    ) -> None:
        """The hot loop of `drain`: every complete frame that lies whole in the buffer."""
        data = buffer._data
        pos = buffer._pos
        end = buffer._end
        max_control = self.max_control_size
        max_frame = self.max_frame_size
        allow = self.allow_payload
        view = memoryview(data)
        try:
            while end - pos >= _HEADER_SIZE:
                prefix, flags, control_len, payload_len = _unpack_prefixed(data, pos)
                if (
                    prefix != _PREFIX
                    or flags > HAS_PAYLOAD
                    or not 0 < control_len <= max_control
                    or control_len + payload_len > max_frame
                    or (flags and not allow)
                    or (payload_len and not flags)
                ):
                    return  # `next_frame` refuses it with the full explanation
                start = pos + _HEADER_SIZE
                control_end = start + control_len
                frame_end = control_end + payload_len
                if frame_end > end:
                    return  # incomplete: `next_frame` takes it from here
                if not flags:
                    payload = None
                elif payload_len < _SMALL_PAYLOAD:
                    payload = bytes(data[control_end:frame_end])
                else:
                    payload = bytes(view[control_end:frame_end])
                pos = frame_end  # consumed before it is handed up (if that raises, the
                handle(decode_raw(view[start:control_end], payload))  # rest stays)
        finally:
            buffer._pos = pos
            view.release()

    def _drain_runs(
        self,
        buffer: ReceiveBuffer,
        handle: Callable[[object], object],
        decode_raw: Callable[[memoryview, bytes | None], object],
        handle_run: Callable[[bytes, list[bytes]], object],
    ) -> None:
        """`_drain_whole` gathering runs (see `drain`): a frame with a payload whose control
        bytes equal the last frame's (compared in place) joins the run; any other frame, and
        the loop's end, hand the run up first. A frame joins the run once consumed, so a run
        is handed up exactly once, before anything after it."""
        data = buffer._data
        pos = buffer._pos
        end = buffer._end
        max_control = self.max_control_size
        max_frame = self.max_frame_size
        allow = self.allow_payload
        view = memoryview(data)
        last = b""  # the control bytes of the frame handed up last (b"": none to join)
        last_len = 0
        run: list[bytes] = []
        try:
            while end - pos >= _HEADER_SIZE:
                prefix, flags, control_len, payload_len = _unpack_prefixed(data, pos)
                if (
                    prefix != _PREFIX
                    or flags > HAS_PAYLOAD
                    or not 0 < control_len <= max_control
                    or control_len + payload_len > max_frame
                    or (flags and not allow)
                    or (payload_len and not flags)
                ):
                    break  # `next_frame` refuses it with the full explanation
                start = pos + _HEADER_SIZE
                control_end = start + control_len
                frame_end = control_end + payload_len
                if frame_end > end:
                    break  # incomplete: `next_frame` takes it from here
                if flags and control_len == last_len and data.startswith(last, start):
                    pos = frame_end  # consumed: handed up with its run
                    if payload_len < _SMALL_PAYLOAD:
                        run.append(bytes(data[control_end:frame_end]))
                    else:
                        run.append(bytes(view[control_end:frame_end]))
                    continue
                if run:  # this frame is not of the run: the run goes first
                    payloads, run = run, []
                    handle_run(last, payloads)
                if not flags:
                    payload = None
                    last, last_len = b"", 0
                else:
                    if payload_len < _SMALL_PAYLOAD:
                        payload = bytes(data[control_end:frame_end])
                    else:
                        payload = bytes(view[control_end:frame_end])
                    last = bytes(data[start:control_end])
                    last_len = control_len
                pos = frame_end  # consumed before it is handed up (if that raises, the
                handle(decode_raw(view[start:control_end], payload))  # rest stays)
            if run:
                payloads, run = run, []
                handle_run(last, payloads)
        finally:
            buffer._pos = pos
            view.release()

    def _check_prefix(self) -> None:
        """Refuse garbage early, even when fewer bytes than a header have arrived."""
        prefix = self._buffer.prefix(len(_PREFIX))
        if prefix != _PREFIX[: len(prefix)]:
            if prefix[:2] != MAGIC[: len(prefix[:2])]:
                self._refuse_header(prefix[:2], FRAME_FORMAT, 0, 1, 0)
            self._refuse_header(MAGIC, prefix[2], 0, 1, 0)

    def _refuse_header(
        self, magic: bytes, fmt: int, flags: int, control_len: int, payload_len: int
    ) -> NoReturn:
        """Raise the ProtocolError that explains why this header is refused."""
        if magic != MAGIC:
            raise ProtocolError(f"bad frame magic {magic!r} (not a discoro peer?)")
        if fmt != FRAME_FORMAT:
            raise ProtocolError(f"unsupported frame format {fmt}")
        if flags & ~HAS_PAYLOAD:
            raise ProtocolError(f"unknown frame flags {flags:#04x}")
        if flags and not self.allow_payload:
            raise ProtocolError("frame with a payload before authentication")
        if payload_len and not flags:
            raise ProtocolError("frame declares payload bytes but no payload")
        if control_len == 0:
            raise ProtocolError("frame without a control map")
        problem = _limit_problem(
            control_len, payload_len, self.max_frame_size, self.max_control_size
        )
        raise ProtocolError(problem or "bad frame header")
