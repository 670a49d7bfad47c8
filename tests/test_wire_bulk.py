"""The bulk lane without sockets (issue 9): a large message travels in fragments interleaved
with other traffic, so a small message queued after it overtakes it, while messages to the
same destination (`ORDER_KEY`) keep their order; whatever the cuts of the stream."""

from __future__ import annotations

import os

from hypothesis import example, given, settings
from hypothesis import strategies as st

from discoro.wire import Message
from discoro.wire.connection import ORDER_KEY, Connection
from discoro.wire.record import LANE_BULK, LANE_CONTROL, LANE_DATA, MAX_PLAINTEXT
from test_wire_connection import connected, received
from testing import events_of as drain

BIG = os.urandom(16 * MAX_PLAINTEXT + 123)  # 16 fragments and a bit


def send(to: int, payload: bytes, n: int = 0) -> Message:
    """A message to coroutine ``to`` (0: a message without a destination)."""
    if not to:
        return Message("notify_exit", fields={"n": n}, payload=payload)
    return Message("send", fields={ORDER_KEY: to, "n": n}, payload=payload)


def stream(conn: Connection, budget: int) -> list[bytes]:
    """Seal everything queued, ``budget`` bytes of records per write."""
    chunks = []
    while (chunk := conn.seal(budget)) is not None:
        chunks.append(bytes(chunk))
    return chunks


def arrival(server: Connection, chunks: list[bytes]) -> list[tuple[int, int]]:
    got = []
    for chunk in chunks:
        got += [(m.fields.get(ORDER_KEY, 0), m.fields["n"]) for m in received(drain(server, chunk))]
    return got


def test_a_small_message_to_another_coroutine_overtakes_a_large_one() -> None:
    client, server = connected()
    client.queue(send(1, BIG))
    assert client._writer is not None and client._writer.pending[LANE_BULK] > len(BIG)
    client.queue(send(2, b"small"))
    chunks = stream(client, 1)  # one record per write: the order they travel in
    assert arrival(server, chunks) == [(2, 0), (1, 0)]
    # the small one travelled in the first data record, after at most one fragment
    first_two = b"".join(chunks[:2])
    assert len(first_two) < 2 * (MAX_PLAINTEXT + 64)


def test_messages_to_the_same_coroutine_keep_their_order() -> None:
    client, server = connected()
    client.queue(send(1, BIG, 0))
    client.queue(send(1, b"after", 1))  # follows the large one on the bulk lane
    client.queue(send(2, b"other", 0))  # may overtake
    client.queue(send(1, BIG, 2))
    client.queue(send(1, b"last", 3))
    got = arrival(server, stream(client, 1))
    assert [n for to, n in got if to == 1] == [0, 1, 2, 3]
    assert got[0] == (2, 0)


def test_a_large_message_waits_behind_a_data_lane_backlog_for_its_coroutine() -> None:
    """With more than a record's worth queued on the data lane, a large message stays there
    (else it could complete before a smaller message to the same coroutine queued earlier)."""
    client, server = connected()
    for n in range(40):
        client.queue(send(1, os.urandom(4000), n))  # ~160 KB on the data lane
    client.queue(send(1, BIG, 40))
    assert client._writer is not None and client._writer.pending[LANE_BULK] == 0
    got = arrival(server, stream(client, 1))
    assert [n for _, n in got] == list(range(41))


def test_control_goes_first_and_messages_without_a_destination_overtake_nothing() -> None:
    client, server = connected()
    client.queue(send(1, BIG))
    client.queue(Message("notify_exit", fields={"m": 5}, payload=b"end"))  # no ORDER_KEY
    client.queue(send(2, b"small"))
    client.queue(Message("reply", rid=9, fields={"r": 1}), LANE_CONTROL)
    assert client._writer is not None and client._writer.pending[LANE_DATA] < 100
    got = [m.op for m in received(drain(server, b"".join(stream(client, 1))))]
    assert got == ["reply", "send", "send", "notify_exit"]
    client.queue(Message("notify_exit", fields={"m": 5}, payload=b"end"))
    assert client._writer.pending[LANE_DATA] > 0  # no bulk frame waits: the data lane


def test_a_large_message_completes_after_the_data_lane_bytes_queued_before_it() -> None:
    """A bulk frame must not complete before a smaller frame to its coroutine still on the
    data lane, even when those data bytes need two records (the rest of a cut part ends its
    own) or the bulk frame is one record (parts each under `BULK_MIN`). Found by the
    property test below: the order was [2, 1]."""
    for more in ((), (b"y" * 40_000,)):
        client, server = connected()
        chunks: list[bytes] = []
        client.queue(send(0, b"x" * 70_000, 0))  # the data lane: a large part, then the rest
        chunks.append(bytes(client.seal(1) or b""))
        client.queue(send(1, b"x" * 10, 1))
        chunks.append(bytes(client.seal(1) or b""))  # the data lane's turn: the bulk's next
        big = b"x" * (70_000 if not more else 40_000)
        client.queue(send(1, big, 2), more=more)
        assert client._writer is not None and client._writer.pending[LANE_BULK] > 0
        chunks += stream(client, 1)
        got = arrival(server, chunks)
        assert [n for to, n in got if to == 1] == [1, 2], (more, got)
        assert sorted(n for _, n in got) == [0, 1, 2]


def test_what_bulk_frames_wait_for_is_forgotten_once_sealed() -> None:
    client, server = connected()
    for n in range(50):  # each large message queued behind a small one to another coroutine
        client.queue(send(2, b"small", n))
        client.queue(send(1, b"x" * 70_000, n))
        got = arrival(server, stream(client, 1 << 20))
        assert sorted(got) == [(1, n), (2, n)]
    assert client._writer is not None and len(client._writer._waits) <= 1


@example(plan=[(0, 70000), (1, 10), (1, 70000)], budget=1, seal_every=1)
@settings(max_examples=40, deadline=None)
@given(
    plan=st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from([10, 5000, 70_000, 200_000])),
        min_size=1,
        max_size=12,
    ),
    budget=st.sampled_from([1, 50_000, 1 << 20]),
    seal_every=st.integers(1, 5),
)
def test_order_per_coroutine_holds_for_any_mix(
    plan: list[tuple[int, int]], budget: int, seal_every: int
) -> None:
    client, server = connected()
    chunks: list[bytes] = []
    for n, (to, size) in enumerate(plan):
        client.queue(send(to, b"x" * size, n))
        if n % seal_every == 0 and (chunk := client.seal(budget)) is not None:
            chunks.append(bytes(chunk))  # some records go out while more are queued
    chunks += stream(client, budget)
    got = arrival(server, chunks)
    assert sorted(got, key=lambda item: item[1]) == [(to, n) for n, (to, _) in enumerate(plan)]
    for to in {to for to, _ in plan} - {0}:
        assert [n for t, n in got if t == to] == [n for n, (t, _) in enumerate(plan) if t == to]
    for position, (to, n) in enumerate(got):
        if to == 0:  # without a destination: after everything queued before it
            assert {m for _, m in got[:position]} >= set(range(n))
