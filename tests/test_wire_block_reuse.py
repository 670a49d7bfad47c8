"""A large block the receive buffer handed up is collected into again only when nothing else
refers to it: a payload the program still holds (or views) never changes under it."""

from __future__ import annotations

import os
import sys

import pytest

from discoro.wire.buffer import COLLECT_THRESHOLD, ReceiveBuffer

SIZE = 4 * COLLECT_THRESHOLD


def collect(buffer: ReceiveBuffer, data: bytes) -> bytearray:
    """Feed ``data`` (a block's bytes) in two pieces, as a socket would; the block."""
    buffer.feed(data[:100])
    assert buffer.take(len(data)) is None  # collecting starts
    buffer.feed(data[100:])
    block = buffer.take(len(data))
    assert type(block) is bytearray
    return block


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="reuse needs refcounts")
def test_a_dropped_block_is_collected_into_again() -> None:
    buffer = ReceiveBuffer()
    first = collect(buffer, os.urandom(SIZE))
    where = id(first)
    copied = bytes(first)  # what a raw message's receiver does: copy, then drop the block
    del first
    second_data = os.urandom(SIZE)
    second = collect(buffer, second_data)
    assert id(second) == where and second == second_data and copied != second_data


@pytest.mark.parametrize("hold", ["reference", "memoryview", "slice view"])
def test_a_block_still_held_is_never_written_again(hold: str) -> None:
    buffer = ReceiveBuffer()
    first_data = os.urandom(SIZE)
    first = collect(buffer, first_data)
    held: object = first
    if hold == "memoryview":
        held = memoryview(first)
    elif hold == "slice view":
        held = memoryview(first)[10:20]
    if hold != "reference":
        del first
    second_data = os.urandom(SIZE)
    second = collect(buffer, second_data)
    assert second == second_data
    if hold == "reference":
        assert held is not second and held == first_data
    else:
        assert isinstance(held, memoryview) and held.obj is not second
        assert bytes(held.obj) == first_data


def test_a_block_of_another_size_is_fresh() -> None:
    buffer = ReceiveBuffer()
    first = collect(buffer, os.urandom(SIZE))
    where = id(first)
    del first
    other = os.urandom(SIZE + 1)
    block = collect(buffer, other)
    assert block == other and len(block) == SIZE + 1
    assert id(block) != where or len(block) == SIZE + 1


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="reuse needs refcounts")
@pytest.mark.parametrize("read_size", [100_000, 1 << 30])
def test_a_stream_of_large_messages_reuses_one_block_and_arrives_intact(read_size: int) -> None:
    from discoro.wire.safepack import pack
    from testing import WirePair

    pair = WirePair().handshake()
    body = pack({"op": "send", "f": {"c": 5}})  # a pickle (a raw one arrives as bytes)
    sent = [os.urandom(SIZE) for _ in range(6)]
    for payload in sent:
        pair.client.queue_packed(body, payload, 5)
    stream = b""
    while (records := pair.client.seal()) is not None:
        stream += records
    got: list[bytes] = []
    blocks: set[int] = set()

    def handle(message: object) -> None:
        payload = message.payload  # type: ignore[attr-defined]
        blocks.add(id(payload))
        got.append(bytes(payload))  # the receiver copies it (unpickles) and drops the block

    for start in range(0, len(stream), read_size):  # socket-sized reads, or all at once
        pair.server.feed(stream[start : start + read_size], handle)
    assert got == sent
    assert len(blocks) == 1  # the block was collected into again each time
