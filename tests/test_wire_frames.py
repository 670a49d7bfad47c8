"""Frame codec and receive buffer: round trips, any split of the stream, and every refusal."""

from __future__ import annotations

import itertools
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discoro.errors import ProtocolError
from discoro.wire.buffer import CHUNK, COLLECT_THRESHOLD, ReceiveBuffer
from discoro.wire.frames import (
    HAS_PAYLOAD,
    HEADER,
    MAGIC,
    Frame,
    FrameDecoder,
    FrameEncoder,
    encode_frame,
)

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=200)

FRAMES: list[Frame] = [
    Frame({"op": "ping"}, None),
    Frame({"op": "send", "f": {"to": "x", "n": [1, 2.5, None, True], "b": b"\x00"}}, b"data"),
    Frame({"op": "send"}, b""),
    Frame({"op": "file_chunk", "f": {"i": 7}}, bytes(range(256)) * 1024),  # 256 KiB
    Frame({"op": "pong", "f": {"s": "é" * 100}}, None),
]
FRAMES_BYTES = [encode_frame(f.control, f.payload) for f in FRAMES]
STREAM = b"".join(FRAMES_BYTES)


def header(control_len: int, payload_len: int = 0, flags: int = 0, fmt: int = 1) -> bytes:
    return HEADER.pack(MAGIC, fmt, flags, control_len, payload_len)


def raw_frame(control: bytes, payload: bytes | None = None) -> bytes:
    flags = HAS_PAYLOAD if payload is not None else 0
    return header(len(control), len(payload or b""), flags) + control + (payload or b"")


def decode_all(chunks: list[bytes], decoder: FrameDecoder | None = None) -> list[Frame]:
    decoder = decoder or FrameDecoder()
    frames = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (frame := decoder.next_frame()) is not None:
            frames.append(frame)
    assert decoder.at_boundary
    return frames


def test_header_layout() -> None:
    data = encode_frame({"op": "ping"}, b"xyz")
    control = msgpack.packb({"op": "ping"})
    assert data == b"DC\x01\x01" + struct.pack("!II", len(control), 3) + control + b"xyz"
    assert encode_frame({"op": "ping"})[3] == 0  # no payload flag


def test_round_trip_whole_stream() -> None:
    assert decode_all([STREAM]) == FRAMES


def test_round_trip_byte_by_byte() -> None:
    assert decode_all([STREAM[i : i + 1] for i in range(len(STREAM))]) == FRAMES


def test_empty_payload_differs_from_no_payload() -> None:
    (with_empty, without) = decode_all([encode_frame({"a": 1}, b""), encode_frame({"a": 1})])
    assert with_empty.payload == b""
    assert without.payload is None


def test_one_megabyte_payload_in_socket_sized_chunks() -> None:
    payload = bytes(range(256)) * 4096
    data = encode_frame({"op": "send"}, payload)
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    assert decode_all(chunks) == [Frame({"op": "send"}, payload)]


@FUZZ
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
def test_round_trip_any_split(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(bounds)]
    assert decode_all(chunks) == FRAMES


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_only_protocol_errors(data: bytes) -> None:
    decoder = FrameDecoder(max_frame_size=1000, max_control_size=500)
    decoder.feed(data)
    try:
        while decoder.next_frame() is not None:
            pass
    except ProtocolError:
        pass


def drain_all(chunks: list[bytes], decoder: FrameDecoder | None = None) -> list[Frame]:
    """Like `decode_all`, through the batch path: received in place, then `drain`."""
    decoder = decoder or FrameDecoder()
    frames: list[Frame] = []
    for chunk in chunks:
        while chunk:
            room = decoder.get_buffer()
            n = min(len(room), len(chunk))
            room[:n] = chunk[:n]
            decoder.buffer_updated(n)
            chunk = chunk[n:]
            decoder.drain(frames.append)
    assert decoder.at_boundary
    return frames


@FUZZ
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
def test_drain_any_split(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(bounds)]
    assert drain_all(chunks) == FRAMES


def test_drain_large_payloads_in_socket_sized_chunks() -> None:
    payload = bytes(range(256)) * 4096
    data = (encode_frame({"op": "a"}) + encode_frame({"op": "send"}, payload)) * 2
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    expected = [Frame({"op": "a"}), Frame({"op": "send"}, payload)] * 2
    assert drain_all(chunks) == expected == decode_all(chunks)


def _outcome(decode: Any, data: bytes) -> tuple[list[Frame], str]:
    decoder = FrameDecoder(max_frame_size=1000, max_control_size=500)
    frames: list[Frame] = []
    try:
        decode(decoder, data, frames)
    except ProtocolError as exc:
        return frames, str(exc)
    return frames, ""


def _by_next_frame(decoder: FrameDecoder, data: bytes, frames: list[Frame]) -> None:
    decoder.feed(data)
    while (frame := decoder.next_frame()) is not None:
        frames.append(frame)


def _by_drain(decoder: FrameDecoder, data: bytes, frames: list[Frame]) -> None:
    decoder.feed(data)
    decoder.drain(frames.append)


@FUZZ
@given(st.lists(st.sampled_from([*FRAMES_BYTES, b"\x00", b"DC", b"DC\x01\x02"]), max_size=8))
def test_drain_and_next_frame_agree(parts: list[bytes]) -> None:
    """Same frames, and the same error (if any), whichever way a stream is decoded."""
    data = b"".join(parts)
    assert _outcome(_by_drain, data) == _outcome(_by_next_frame, data)


def test_encode_parts_does_not_copy_payload() -> None:
    payload = b"p" * 100
    _, body = FrameEncoder().encode_parts({"op": "send"}, payload)
    assert body is payload
    (empty,) = FrameEncoder().encode_parts({"op": "send"}, b"")
    assert empty == encode_frame({"op": "send"}, b"")
    assert empty[3] == HAS_PAYLOAD
    assert FrameEncoder().encode_parts({"op": "send"}) == [encode_frame({"op": "send"})]


def test_encoder_refuses_oversize_and_foreign_types() -> None:
    encoder = FrameEncoder(max_frame_size=100, max_control_size=50)
    with pytest.raises(ValueError, match="exceeds limit 100"):
        encoder.encode({"op": "send"}, b"x" * 100)
    with pytest.raises(ValueError, match=r"control of \d+ bytes exceeds limit 50"):
        encoder.encode({"op": "x" * 60})
    with pytest.raises(TypeError):
        encoder.encode({"op": "x", "bad": object()})
    assert encoder.encode({"op": "ping"}) == encode_frame({"op": "ping"})  # not left dirty


def test_trailing_garbage_fails_on_next_frame() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame({"op": "ping"}) + b"xyz")
    assert decoder.next_frame() == Frame({"op": "ping"}, None)
    with pytest.raises(ProtocolError, match="bad frame magic"):
        decoder.next_frame()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "bad frame magic"),
        (b"D", None),  # a correct beginning: needs more data
        (b"DX", "bad frame magic"),
        (b"DC\x02", "unsupported frame format 2"),
        (header(5, flags=0x02), "unknown frame flags"),
        (header(5, payload_len=3), "payload bytes but no payload"),
        (header(0), "without a control map"),
        (header(0x7FFFFFFF), "control of 2147483647 bytes exceeds limit"),
        (header(1000, 0xFFFFFFFF, HAS_PAYLOAD), "frame of 4294968295 bytes exceeds limit"),
    ],
)
def test_bad_header_refused_before_body(data: bytes, match: str | None) -> None:
    decoder = FrameDecoder()
    decoder.feed(data)
    if match is None:
        assert decoder.next_frame() is None
    else:
        with pytest.raises(ProtocolError, match=match):
            decoder.next_frame()


def test_payload_refused_when_not_allowed() -> None:
    decoder = FrameDecoder(allow_payload=False)
    decoder.feed(header(10, 5, HAS_PAYLOAD))  # header only: refused before the body
    with pytest.raises(ProtocolError, match="payload before authentication"):
        decoder.next_frame()


def test_limits_apply_per_frame() -> None:
    decoder = FrameDecoder(max_frame_size=64, max_control_size=64)
    decoder.feed(encode_frame({"op": "ping"}) + encode_frame({"op": "p" * 100}))
    assert decoder.next_frame() == Frame({"op": "ping"}, None)
    decoder.max_frame_size = decoder.max_control_size = 1000
    assert decoder.next_frame() == Frame({"op": "p" * 100}, None)


@pytest.mark.parametrize(
    ("control", "match"),
    [
        (msgpack.packb([1, 2]), "expected a map, got list"),
        (msgpack.packb({b"op": 1}), "map key b'op' is not a str"),
        (b"\x81\x01\x02", "malformed frame control"),  # int key
        (msgpack.packb({"t": msgpack.ExtType(1, b"x")}), "malformed frame control"),
        (msgpack.packb({"t": msgpack.Timestamp(1)}), "malformed frame control"),
        (b"\x81\xa2op\xa2\xff\xfe", "malformed frame control"),  # invalid UTF-8
        (msgpack.packb({"a": 1}) + b"\x01", "malformed frame control"),  # extra data
        (msgpack.packb({"a": 1})[:-1], "malformed frame control"),  # truncated
        (b"\xc1", "malformed frame control"),  # never-used type byte
        (b"\x91" * 5000 + b"\x90", "malformed frame control"),  # nesting bomb
        (b"\xdf\xff\xff\xff\xff", "malformed frame control"),  # 4G entries claimed
    ],
)
def test_bad_control_refused(control: bytes, match: str) -> None:
    decoder = FrameDecoder()
    decoder.feed(raw_frame(control))
    with pytest.raises(ProtocolError, match=match):
        decoder.next_frame()


def test_at_boundary_tracks_partial_frames() -> None:
    data = encode_frame({"op": "send"}, b"x" * (COLLECT_THRESHOLD * 2))
    decoder = FrameDecoder()
    assert decoder.at_boundary
    for size in (1, 12, 20, len(data) - 1):
        decoder = FrameDecoder()
        decoder.feed(data[:size])
        assert decoder.next_frame() is None
        assert not decoder.at_boundary
    decoder.feed(data[len(data) - 1 :])
    assert decoder.next_frame() is not None
    assert decoder.at_boundary


def test_buffer_compacts_consumed_prefix() -> None:
    buffer = ReceiveBuffer()
    buffer.feed(b"ab")
    for i in range(10_000):
        buffer.feed(bytes([i % 256]))  # pending bytes force the private bytearray
        assert buffer.read(1)
        assert len(buffer._data) <= CHUNK  # consumed bytes are dropped, not accumulated
    room = buffer.get_buffer()
    assert len(room) >= 16 * 1024 and len(buffer._data) == CHUNK  # room made by moving, not growing


def receive_into(buffer: ReceiveBuffer, data: bytes, step: int) -> None:
    """What a BufferedProtocol transport does: recv_into get_buffer(), buffer_updated(n)."""
    while data:
        room = buffer.get_buffer()
        n = min(len(room), step, len(data))
        room[:n] = data[:n]
        buffer.buffer_updated(n)
        data = data[n:]


def test_buffer_receives_into_its_own_room() -> None:
    buffer = ReceiveBuffer()
    receive_into(buffer, b"hello world", 3)
    assert buffer.read(5) == b"hello"
    receive_into(buffer, b"!" * (3 * CHUNK), CHUNK)  # more than one room's worth
    assert buffer.read(6 + 3 * CHUNK) == b" world" + b"!" * (3 * CHUNK)
    assert buffer.empty


def test_large_block_is_received_in_place() -> None:
    buffer = ReceiveBuffer()
    block = bytes(range(256)) * 1024
    receive_into(buffer, b"hd" + block[:1000], 4096)
    assert buffer.read(2) == b"hd"
    assert buffer.take(len(block)) is None
    collected = buffer._block
    room = buffer.get_buffer()
    assert len(room) == len(block) - 1000  # never more than the block misses
    assert room.obj is collected  # the socket writes straight into the block
    receive_into(buffer, block[1000:] + b"tail", 65536)
    taken = buffer.take(len(block))
    assert taken is collected and taken == block
    assert buffer.read(4) == b"tail"
    assert buffer.empty


def test_buffer_collects_large_block_without_buffering() -> None:
    buffer = ReceiveBuffer()
    block = bytes(range(256)) * 1024
    buffer.feed(b"hd" + block[:1000])
    assert buffer.read(2) == b"hd"
    assert buffer.take(len(block)) is None
    pieces = [block[i : i + 4096] for i in range(1000, len(block), 4096)]
    for piece in pieces:
        buffer.feed(piece)
        assert len(buffer) == 0  # routed into the block, not into the buffer
    buffer.feed(b"tail")
    assert buffer.take(len(block)) == block
    assert buffer.read(4) == b"tail"
    assert buffer.empty


def test_buffer_accepts_bytearray_and_memoryview() -> None:
    buffer = ReceiveBuffer()
    source = bytearray(b"hello")
    buffer.feed(source)
    buffer.feed(memoryview(b" world"))
    source[:] = b"XXXXX"  # the buffer copied the caller's mutable bytes
    assert buffer.read(11) == b"hello world"


def test_frame_controls_with_any_msgpack_value() -> None:
    control: dict[str, Any] = {"op": "x", "f": {"nested": {"k": [1, {"z": b"b"}]}, "big": 2**63}}
    assert decode_all([encode_frame(control)]) == [Frame(control, None)]
