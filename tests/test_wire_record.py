"""AEAD records without sockets: any split of the stream decodes the same; any flipped bit,
replayed, reordered, dropped, truncated or injected record is refused before anything in it
reaches a frame decoder."""

from __future__ import annotations

import itertools
import os
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discoro.errors import ProtocolError
from discoro.wire.frames import Frame, FrameDecoder, FrameEncoder
from discoro.wire.record import (
    HEADER,
    LANE_CONTROL,
    LANE_DATA,
    LANES,
    MAX_PLAINTEXT,
    TAG_SIZE,
    RecordReader,
    RecordWriter,
    aes_gcm,
)

KEY = bytes(range(32))
DIRECTION = b"c2s\0"
FRAMES = [
    ({"op": "send", "n": 1}, pickle.dumps({"x": 1})),
    ({"op": "ping"}, None),
    ({"op": "send", "n": 2}, bytes(range(256)) * 1024),  # 256 KiB: spans records
    ({"op": "reply", "rid": 7}, None),
    ({"op": "send", "n": 3}, b""),
]
_encoder = FrameEncoder()


def writer(key: bytes = KEY) -> RecordWriter:
    return RecordWriter(aes_gcm(key), DIRECTION)


def reader(key: bytes = KEY) -> RecordReader:
    return RecordReader(aes_gcm(key), DIRECTION, tuple(FrameDecoder() for _ in range(LANES)))


def add(out: RecordWriter, control: dict, payload: bytes | None, lane: int = LANE_DATA) -> None:
    parts: list = []
    _encoder.encode_into(parts, control, payload)
    out.add(lane, parts)


def sealed_stream(frames=FRAMES, budget: int = 1 << 30, one_by_one: bool = False) -> bytes:
    """The records for ``frames`` (sealed together, or each frame in its own records)."""
    out = writer()
    chunks = []
    for control, payload in frames:
        add(out, control, payload, LANE_CONTROL if control["op"] == "reply" else LANE_DATA)
        while one_by_one and (chunk := out.seal(budget)) is not None:
            chunks.append(bytes(chunk))
    while (chunk := out.seal(budget)) is not None:
        chunks.append(bytes(chunk))
    return b"".join(chunks)


def records_of(stream: bytes) -> list[bytes]:
    records, pos = [], 0
    while pos < len(stream):
        (word,) = HEADER.unpack_from(stream, pos)
        end = pos + HEADER.size + (word & 0xFFFFFF)
        records.append(stream[pos:end])
        pos = end
    return records


def decode(rd: RecordReader, data: bytes, got: list[Frame]) -> None:
    rd.feed(data)
    rd.drain(got.append, Frame)


def normalised(frames: list[Frame]) -> list[tuple]:
    return [(f.control, None if f.payload is None else bytes(f.payload)) for f in frames]


EXPECTED_ORDER = [FRAMES[3], FRAMES[0], FRAMES[1], FRAMES[2], FRAMES[4]]  # control lane first


def test_round_trip_control_lane_first() -> None:
    got: list[Frame] = []
    decode(reader(), sealed_stream(), got)
    assert normalised(got) == [(c, p) for c, p in EXPECTED_ORDER]


def test_records_are_bounded_and_small_frames_share_one() -> None:
    stream = sealed_stream()
    sizes = [len(r) - HEADER.size - TAG_SIZE for r in records_of(stream)]
    # reply; the small frames and the 256 KiB frame's header; its payload in 4; the last
    assert max(sizes) == MAX_PLAINTEXT and len(sizes) == 7
    assert sizes[2:6] == [MAX_PLAINTEXT] * 4  # the payload's bytes in records of their own
    assert len(records_of(sealed_stream(FRAMES[:2]))) == 1  # two small frames, one record


def test_plaintext_does_not_appear_on_the_wire() -> None:
    secret_payload = b"a very recognisable payload " * 10
    stream = sealed_stream([({"op": "send"}, secret_payload)])
    assert b"recognisable" not in stream and b"send" not in stream


def test_whole_stream_byte_by_byte() -> None:
    got: list[Frame] = []
    rd = reader()
    stream = sealed_stream(FRAMES[:2] + FRAMES[3:])
    for i in range(len(stream)):
        decode(rd, stream[i : i + 1], got)
    assert normalised(got) == [(c, p) for c, p in [FRAMES[3], FRAMES[0], FRAMES[1], FRAMES[4]]]
    assert rd.at_boundary


@settings(derandomize=True, database=None, deadline=None, max_examples=60)
@given(st.lists(st.integers(min_value=0, max_value=300_000), max_size=25))
def test_any_split_of_the_stream_decodes_the_same(cuts: list[int]) -> None:
    stream = sealed_stream()
    bounds = [0, *sorted(c for c in cuts if c < len(stream)), len(stream)]
    got: list[Frame] = []
    rd = reader()
    for a, b in itertools.pairwise(bounds):
        decode(rd, stream[a:b], got)
    assert normalised(got) == [(c, p) for c, p in EXPECTED_ORDER]


SMALL = [({"op": "send", "n": i}, os.urandom(i * 7)) for i in range(6)]


@settings(derandomize=True, database=None, deadline=None, max_examples=300)
@given(st.data())
def test_any_single_flipped_bit_is_refused(data: st.DataObject) -> None:
    stream = bytearray(sealed_stream(SMALL, one_by_one=True))  # one record per frame
    bit = data.draw(st.integers(min_value=0, max_value=len(stream) * 8 - 1))
    stream[bit // 8] ^= 1 << (bit % 8)
    first_bad = next(i for i, r in enumerate(_offsets(stream)) if r > bit // 8) - 1
    got: list[Frame] = []
    rd = reader()
    try:
        decode(rd, bytes(stream), got)
    except ProtocolError:
        refused = True
    else:  # a length that grew: the record never completes, so the EOF is refused
        refused = not rd.at_boundary
    assert refused
    assert normalised(got) == [(c, p) for c, p in SMALL[:first_bad]]  # only records before it


def _offsets(stream: bytes | bytearray) -> list[int]:
    """Where each record of an untampered SMALL stream starts (and the end)."""
    clean = sealed_stream(SMALL, one_by_one=True)
    offsets, pos = [], 0
    for record in records_of(clean):
        offsets.append(pos)
        pos += len(record)
    return [*offsets, pos + 1]


def test_flipped_length_bit_that_asks_for_more_waits_then_ends_mid_record() -> None:
    stream = bytearray(sealed_stream(SMALL[:1]))
    stream[3] ^= 0x01  # a slightly different length: the tag check or the EOF catches it
    rd = reader()
    got: list[Frame] = []
    try:
        decode(rd, bytes(stream), got)
    except ProtocolError:
        return
    assert got == [] and not rd.at_boundary


@pytest.mark.parametrize("attack", ["replay", "reorder", "drop", "inject", "other key"])
def test_replayed_reordered_dropped_or_injected_records_are_refused(attack: str) -> None:
    records = records_of(sealed_stream(SMALL, one_by_one=True))
    if attack == "replay":
        stream = records[0] + records[1] + records[1]
    elif attack == "reorder":
        stream = records[0] + records[2] + records[1]
    elif attack == "drop":
        stream = records[0] + records[2]
    elif attack == "inject":
        frame = _encoder.encode({"op": "send"}, pickle.dumps("evil"))
        fake = HEADER.pack(len(frame) + TAG_SIZE) + frame + bytes(TAG_SIZE)
        stream = records[0] + fake
    else:
        out = RecordWriter(aes_gcm(bytes(32)), DIRECTION)
        add(out, {"op": "send"}, b"evil")
        stream = records[0] + bytes(out.seal() or b"")
    got: list[Frame] = []
    with pytest.raises(ProtocolError, match="failed authentication"):
        decode(reader(), stream, got)
    good = 2 if attack == "replay" else 1  # the records before the bad one; nothing of it
    assert normalised(got) == SMALL[:good]


def test_the_other_direction_cannot_be_reflected() -> None:
    stream = sealed_stream(SMALL[:1])
    rd = RecordReader(aes_gcm(KEY), b"s2c\0", tuple(FrameDecoder() for _ in range(LANES)))
    with pytest.raises(ProtocolError, match="failed authentication"):
        decode(rd, stream, [])


@pytest.mark.parametrize("length", [0, TAG_SIZE, MAX_PLAINTEXT + TAG_SIZE + 1])
def test_bad_lengths_are_refused_from_the_header_alone(length: int) -> None:
    with pytest.raises(ProtocolError, match="bad record header"):
        decode(reader(), HEADER.pack(length), [])
    with pytest.raises(ProtocolError, match="bad record header"):
        decode(reader(), HEADER.pack((7 << 24) | 100), [])  # no such lane


def test_a_large_payload_is_decrypted_into_place() -> None:
    payload = os.urandom(3 * MAX_PLAINTEXT + 5)
    got: list[Frame] = []
    decode(reader(), sealed_stream([({"op": "send"}, payload)]), got)
    assert type(got[0].payload) is bytearray and got[0].payload == payload


def test_writer_slices_large_payloads_without_joining_them() -> None:
    out = writer()
    payload = bytearray(os.urandom(4 * MAX_PLAINTEXT))
    parts: list = []
    size = _encoder.encode_into(parts, {"op": "send"}, payload)
    assert parts[1] is payload
    out.add(LANE_DATA, parts)
    first = out.seal(budget=1)  # one record: the frame's header (the payload does not fit)
    assert first is not None and len(first) == HEADER.size + len(parts[0]) + TAG_SIZE
    second = out.seal(budget=1)  # the payload's head, a record of its own
    assert second is not None and len(second) == HEADER.size + MAX_PLAINTEXT + TAG_SIZE
    assert sum(out.pending) == size - len(parts[0]) - MAX_PLAINTEXT
    queued = out._lanes[LANE_DATA][0]
    assert type(queued) is memoryview and queued.obj is payload  # the rest: a view, no copy
