"""Large raw payloads end to end without sockets (issue 9): they arrive as ``bytes`` collected
in place (no copy into a bytes object at the end), intact for sizes around the fragment and
record boundaries, however the stream is cut into reads; a large payload's bytes lie in
records of their own, so each is decrypted straight into its block."""

from __future__ import annotations

import os
import random
import sys

import pytest

from discoro.net import payloads
from discoro.wire.buffer import COLLECT_THRESHOLD, ReceiveBuffer
from discoro.wire.connection import ORDER_KEY, RAW_KEY, Connection
from discoro.wire.fresh_bytes import fresh_bytes
from discoro.wire.messages import Message
from discoro.wire.record import HEADER, LANE_BULK, MAX_BULK_PLAINTEXT, MAX_PLAINTEXT, TAG_SIZE
from testing import WirePair

pytestmark = pytest.mark.timeout(60)
CPYTHON = sys.implementation.name == "cpython"
F = MAX_PLAINTEXT
B = MAX_BULK_PLAINTEXT
SIZES = [F - 1, F, F + 1, 2 * F - 30, 2 * F, B - 1, B, B + 1, 16 * F, 16 * F + 7, 3 * F + 12345]


def raw(to: int, data: object, n: int = 0) -> Message:
    """A raw message as `net.payloads` makes it from ``data`` (bytes, bytearray, view)."""
    fields: dict[str, object] = {ORDER_KEY: to, "n": n}
    payload, more = payloads.encode(data, fields)
    assert not more and fields[RAW_KEY]
    return Message("send", fields=fields, payload=payload)


def sealed(conn: Connection) -> bytes:
    out = []
    while (chunk := conn.seal()) is not None:
        out.append(bytes(chunk))
    return b"".join(out)


def receive(conn: Connection, stream: bytes, reads: list[int]) -> list[Message]:
    """Deliver ``stream`` to ``conn`` through its receive buffer (``recv_into`` style), in
    reads of the sizes in ``reads`` (cycled)."""
    got: list[Message] = []
    pos = 0
    i = 0
    while pos < len(stream):
        room = conn.get_buffer(-1)
        n = min(len(room), reads[i % len(reads)], len(stream) - pos)
        i += 1
        room[:n] = stream[pos : pos + n]
        del room
        conn.buffer_updated(n)
        pos += n
        conn.process(got.append)
    return got


def test_the_raw_key_is_the_payloads_field() -> None:
    assert payloads.RAW == RAW_KEY


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview"])
@pytest.mark.parametrize("reads", [[1 << 30], [4096], [65536 + 20], [997, 70001, 3]])
def test_raw_payloads_arrive_as_bytes_intact(kind: str, reads: list[int]) -> None:
    rng = random.Random(f"{kind}{reads}")
    pair = WirePair().handshake()
    sent = []
    for i, size in enumerate(SIZES + [rng.randrange(F, 20 * F) for _ in range(4)]):
        data = os.urandom(size)
        sent.append(data)
        message = bytearray(data) if kind == "bytearray" else data
        if kind == "memoryview":
            message = memoryview(bytearray(data))
        pair.client.queue(raw(1 + i % 3, message, i))
        pair.client.queue(Message("send", fields={ORDER_KEY: 9, "n": i}, payload=b"small"))
    got = receive(pair.server, sealed(pair.client), reads)
    big = [m for m in got if m.fields[ORDER_KEY] != 9]
    assert sorted(m.fields["n"] for m in big) == list(range(len(sent)))
    for message in big:
        payload = message.payload
        assert payload == sent[message.fields["n"]]
        if len(payload) >= COLLECT_THRESHOLD and CPYTHON:
            assert type(payload) is bytes  # collected in place: no copy left to make
        assert payloads.decode(message.fields, payload) == sent[message.fields["n"]]
    assert len(got) == 2 * len(sent)


def test_a_pickled_large_payload_still_arrives_in_a_bytearray() -> None:
    """Only raw payloads are collected as bytes: a pickle's out-of-band buffers are views of
    the payload, writable as before."""
    pair = WirePair().handshake()
    data = os.urandom(3 * F)
    pair.client.queue(Message("send", fields={ORDER_KEY: 1}, payload=data))
    (message,) = receive(pair.server, sealed(pair.client), [5000])
    assert type(message.payload) is bytearray and message.payload == data


def record_sizes(stream: bytes) -> list[tuple[int, int]]:
    """(lane, plaintext size) of each record in ``stream``."""
    sizes = []
    pos = 0
    while pos < len(stream):
        (word,) = HEADER.unpack_from(stream, pos)
        sizes.append((word >> 24, (word & 0xFFFFFF) - TAG_SIZE))
        pos += HEADER.size + (word & 0xFFFFFF)
    return sizes


@pytest.mark.parametrize("size", [F, 3 * F, 4 * B, 5 * F + 100, 9 * B + 1])
def test_a_bulk_frames_payload_lies_in_records_of_its_own(size: int) -> None:
    """The writer's cuts: the frame header alone (the payload starts a record), then full
    bulk records, the payload's last piece ending its record; the next frame starts anew."""
    pair = WirePair().handshake()
    pair.client.queue(raw(1, os.urandom(size)))
    pair.client.queue(raw(1, os.urandom(size)))
    sizes = record_sizes(sealed(pair.client))
    assert {lane for lane, _ in sizes} == {LANE_BULK}
    head = sizes[0][1]
    assert head < 100
    one = [head] + [B] * (size // B) + ([size % B] if size % B else [])
    assert [n for _, n in sizes] == one + one


def test_a_partly_received_record_is_read_to_its_end_and_no_further() -> None:
    pair = WirePair().handshake()
    pair.client.queue(raw(1, os.urandom(2 * B)))
    stream = sealed(pair.client)
    record = HEADER.size + B + TAG_SIZE
    first = HEADER.size + record_sizes(stream)[0][1] + TAG_SIZE
    server = pair.server
    room = server.get_buffer(-1)
    room[: first + 1000] = stream[: first + 1000]  # the header record and a bit
    del room
    server.buffer_updated(first + 1000)
    assert server.process(lambda m: None)
    room = server.get_buffer(-1)
    assert len(room) == record - 1000  # exactly the rest of the record
    del room


@pytest.mark.skipif(fresh_bytes is None, reason="needs CPython's bytes layout")
def test_fresh_bytes_are_written_through_the_view() -> None:
    data, view = fresh_bytes(100_000)
    assert type(data) is bytes and len(data) == 100_000 and not view.readonly
    view[:] = b"x" * 100_000
    assert data == b"x" * 100_000 and hash(data) == hash(b"x" * 100_000)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_a_block_fed_in_pieces_comes_back_whole(as_bytes: bool) -> None:
    buffer = ReceiveBuffer()
    data = os.urandom(3 * COLLECT_THRESHOLD + 5)
    buffer.feed(data[:10])
    assert buffer.take(len(data), as_bytes) is None
    pos = 10
    while pos < len(data):
        room = buffer.get_buffer()
        n = min(len(room), 3000, len(data) - pos)
        room[:n] = data[pos : pos + n]
        buffer.buffer_updated(n)
        pos += n
        if pos < len(data):
            assert buffer.take(len(data), as_bytes) is None
    block = buffer.take(len(data), as_bytes)
    assert block == data
    assert type(block) is (bytes if as_bytes and fresh_bytes is not None else bytearray)
    buffer.feed(b"after")  # what follows the block lands behind it, not in it
    assert buffer.read(5) == b"after" and block == data
