"""A send whose control map was packed once (`Connection.queue_packed`, what
`RemoteSends.send` uses for every plain send): the peer receives exactly the message
`Connection.queue` would have sent, in order with the frames around it, and a large one
travels on the bulk lane and may be overtaken only by frames for other coroutines."""

from __future__ import annotations

import pytest

from discoro.errors import LocalProtocolError
from discoro.wire import Connection, Identity, Message, Role, message_control
from discoro.wire.frames import FrameEncoder
from discoro.wire.record import BULK_MIN, LANE_DATA
from discoro.wire.safepack import pack
from testing import WirePair

SECRET = b"k" * 32


def connected() -> tuple[Connection, Connection]:
    ids = Identity("c", "127.0.0.1", 9001, "c1"), Identity("s", "127.0.0.1", 9002, "s1")
    pair = WirePair(SECRET, *ids).handshake()
    return pair.client, pair.server


def sealed(conn: Connection) -> list[bytes | bytearray]:
    out = []
    while (records := conn.seal()) is not None:
        out.append(records)
    return out


def received(conn: Connection, chunks: list[bytes | bytearray]) -> list[Message]:
    got: list[Message] = []
    for chunk in chunks:
        assert conn.feed(bytes(chunk), got.append)
    return got


def test_packed_frame_is_the_frame_queue_makes() -> None:
    message = Message("send", fields={"c": 7, "b": 1, "t": 3}, payload=b"x" * 100)
    body = pack(message_control(message))
    packed: list[bytes | bytearray | memoryview] = []
    built: list[bytes | bytearray | memoryview] = []
    encoder = FrameEncoder()
    assert encoder.encode_packed_into(packed, body, message.payload) == encoder.encode_into(
        built, message_control(message), message.payload
    )
    assert packed == built


def test_packed_sends_arrive_as_messages_in_order_with_the_others() -> None:
    client, server = connected()
    body = pack({"op": "send", "f": {"c": 5, "b": 1}})
    sent = []
    for i in range(50):
        if i % 7 == 3:
            message = Message("send", fields={"c": 5, "n": i}, payload=b"%d" % i)
            client.queue(message, LANE_DATA)
        else:
            message = Message("send", fields={"c": 5, "b": 1}, payload=b"%d" % i)
            client.queue_packed(body, b"%d" % i, 5)
        sent.append(message)
    assert received(server, sealed(client)) == sent


def test_a_large_packed_send_goes_on_the_bulk_lane_and_keeps_its_coroutines_order() -> None:
    client, server = connected()
    big = bytes(range(256)) * (2 * BULK_MIN // 256 + 1)
    to_5 = pack({"op": "send", "f": {"c": 5, "b": 1}})
    to_6 = pack({"op": "send", "f": {"c": 6, "b": 1}})
    client.queue_packed(to_5, big, 5)
    client.queue_packed(to_5, b"after big, same coroutine", 5)
    client.queue_packed(to_6, b"other coroutine", 6)
    got = received(server, sealed(client))
    assert [m.payload for m in got if m.fields["c"] == 5] == [big, b"after big, same coroutine"]
    assert [m.payload for m in got].index(b"other coroutine") < [m.payload for m in got].index(
        big
    )  # overtook the big one: it was on the bulk lane
    assert {len(m.payload or b"") for m in got} == {len(big), 25, 15}


def test_packed_send_too_big_or_unauthenticated_is_refused() -> None:
    client, _ = connected()
    body = pack({"op": "send", "f": {"c": 5}})
    with pytest.raises(ValueError, match="exceeds limit"):
        client.queue_packed(body, b"x" * (client.max_frame_size + 1), 5)
    fresh = Connection(Role.CLIENT, SECRET, Identity("c", "127.0.0.1", 9001, "c1"))
    with pytest.raises(LocalProtocolError):
        fresh.queue_packed(body, b"x", 5)
