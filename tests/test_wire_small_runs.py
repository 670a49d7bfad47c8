"""Small frames copied into runs (`RecordWriter.queue_small`) mixed with frames queued as
parts (large, with out-of-band buffers, on the bulk lane), sealed at random points with
random budgets and received in random splits: every message arrives once, intact, in order
per destination coroutine and per lane, and the writer's byte count always equals its lanes'."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from discoro.wire import Connection, Message
from discoro.wire.record import LANE_CONTROL, LANE_DATA
from discoro.wire.safepack import pack
from testing import WirePair

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("packed"), st.integers(1, 3), st.integers(0, 1600)),
        st.tuples(st.just("message"), st.integers(1, 3), st.integers(0, 1600)),
        st.tuples(st.just("control"), st.integers(0, 0), st.integers(0, 600)),
        st.tuples(st.just("large"), st.integers(1, 3), st.integers(2000, 150_000)),
        st.tuples(st.just("parts"), st.integers(1, 3), st.integers(1, 3000)),
        st.tuples(st.just("seal"), st.integers(0, 0), st.integers(1, 300_000)),
    ),
    max_size=40,
)


def _payload(index: int, size: int) -> bytes:
    return (index.to_bytes(4, "big") * (size // 4 + 1))[:size]


def _check_count(conn: Connection) -> None:
    writer = conn._writer
    assert writer is not None and writer.queued == sum(writer.pending) == conn.queued


@settings(max_examples=60, deadline=None)
@given(_ops, st.lists(st.integers(0, 2_000_000), max_size=12))
def test_runs_and_parts_arrive_once_in_order(ops: list[tuple[str, int, int]], cuts: list[int]):
    pair = WirePair().handshake()
    client, server = pair.client, pair.server
    sent: list[Message] = []
    stream = bytearray()
    for index, (kind, coro, size) in enumerate(ops):
        if kind == "seal":
            records = client.seal(size)
            if records is not None:
                stream += records
            _check_count(client)
            continue
        fields = {"c": coro, "b": 1, "i": index}
        payload = _payload(index, size)
        if kind == "packed":
            client.queue_packed(pack({"op": "send", "f": fields}), payload, coro)
            message = Message("send", fields=fields, payload=payload)
        elif kind == "control":
            message = Message("pong", fields={"i": index}, payload=payload or None)
            client.queue(message, LANE_CONTROL)
        elif kind == "parts":  # a payload with buffers that follow it (never copied)
            message = Message("send", fields=fields, payload=payload + payload[::-1])
            client.queue(Message("send", fields=fields, payload=payload), more=(payload[::-1],))
        else:  # "message" (small) or "large" (maybe the bulk lane)
            message = Message("send", fields=fields, payload=payload)
            client.queue(message, LANE_DATA)
        sent.append(message)
        _check_count(client)
    while (records := client.seal()) is not None:
        stream += records
    assert client.queued == 0 and client.unsent() == 0 and client.unsent(LANE_CONTROL) == 0
    got: list[Message] = []
    points = sorted({cut % (len(stream) + 1) for cut in cuts} | {0, len(stream)})
    for start, end in itertools.pairwise(points):
        server.feed(bytes(stream[start:end]), got.append)
    normal = [(m.op, m.fields, bytes(m.payload or b"")) for m in got]
    expected = [(m.op, m.fields, bytes(m.payload or b"")) for m in sent]
    assert sorted(map(repr, normal)) == sorted(map(repr, expected))  # each once, intact
    for key in (1, 2, 3):  # order per destination coroutine
        assert [m for m in normal if m[1].get("c") == key] == [
            m for m in expected if m[1].get("c") == key
        ]
    assert [m for m in normal if m[0] == "pong"] == [m for m in expected if m[0] == "pong"]
