"""Connection after the handshake: messages both ways, any split of the stream, and ends."""

from __future__ import annotations

import itertools
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discoro.errors import LocalProtocolError, ProtocolError
from discoro.wire import (
    Connection,
    ConnectionClosed,
    ConnectionState,
    Event,
    HandshakeComplete,
    Identity,
    Message,
    MessageReceived,
    Role,
    encode_frame,
)
from discoro.wire.record import LANE_DATA
from testing import WirePair
from testing import events_of as drain

SECRET = b"cluster secret"
CLIENT_ID = Identity("client", "127.0.0.1", 9001, "c1")
SERVER_ID = Identity("server", "127.0.0.1", 9002, "s1")

MESSAGES = [
    Message("ping"),
    Message("send", fields={"to": "coro/3", "n": [1, 2]}, payload=pickle.dumps({"x": 1})),
    Message("deliver", rid=7, payload=b""),
    Message("reply", rid=7, fields={"result": 1}),
    Message("file_chunk", fields={"off": 0}, payload=bytes(range(256)) * 4096),  # 1 MiB
    Message("peer_closed"),
]


def connected(max_frame_size: int = 64 * 1024 * 1024) -> tuple[Connection, Connection]:
    pair = WirePair(SECRET, CLIENT_ID, SERVER_ID, max_frame_size=max_frame_size).handshake()
    return pair.client, pair.server


def received(events: list[Event]) -> list[Message]:
    assert all(isinstance(event, MessageReceived) for event in events)
    return [event.message for event in events if isinstance(event, MessageReceived)]


def test_messages_both_ways() -> None:
    client, server = connected()
    to_server = b"".join(client.send(m) for m in MESSAGES)
    assert received(drain(server, to_server)) == MESSAGES
    for message in MESSAGES:
        assert received(drain(client, server.send(message))) == [message]


def test_whole_conversation_byte_by_byte() -> None:
    client = Connection(Role.CLIENT, SECRET, CLIENT_ID)
    server = Connection(Role.SERVER, SECRET, SERVER_ID)
    client.start()
    server_events: list[Event] = []
    client_events: list[Event] = []
    for _ in range(3):
        for byte in client.data_to_send():
            server_events += drain(server, bytes([byte]))
        for byte in server.data_to_send():
            client_events += drain(client, bytes([byte]))
    assert server_events == [HandshakeComplete(CLIENT_ID)]
    assert client_events == [HandshakeComplete(SERVER_ID)]
    stream = b"".join(client.send(m) for m in MESSAGES[:4])
    events: list[Event] = []
    for i in range(len(stream)):
        events += drain(server, stream[i : i + 1])
    assert received(events) == MESSAGES[:4]


@settings(derandomize=True, database=None, deadline=None, max_examples=50)
@given(st.lists(st.integers(min_value=0, max_value=2_000_000), max_size=20))
def test_any_split_of_stream(cuts: list[int]) -> None:
    client, server = connected()
    stream = b"".join(client.send(m) for m in MESSAGES)
    bounds = [0, *sorted(c for c in cuts if c < len(stream)), len(stream)]
    events: list[Event] = []
    for a, b in itertools.pairwise(bounds):
        events += drain(server, stream[a:b])
    assert received(events) == MESSAGES


def test_server_ok_and_first_messages_in_one_segment() -> None:
    client = Connection(Role.CLIENT, SECRET, CLIENT_ID)
    server = Connection(Role.SERVER, SECRET, SERVER_ID)
    client.start()
    drain(server, client.data_to_send())
    drain(client, server.data_to_send())
    assert drain(server, client.data_to_send()) == [HandshakeComplete(CLIENT_ID)]
    # The shell sends before collecting data_to_send: the OK must still come first.
    segment = server.send(Message("ping", rid=1)) + server.send(Message("pong"))
    assert server.data_to_send() == b""
    assert drain(client, segment) == [
        HandshakeComplete(SERVER_ID),
        MessageReceived(Message("ping", rid=1)),
        MessageReceived(Message("pong")),
    ]


def test_payload_is_opaque_after_authentication() -> None:
    client, server = connected()
    data = pickle.dumps(("anything", 1))
    (event,) = drain(server, client.send(Message("send", payload=data)))
    assert isinstance(event, MessageReceived)
    assert event.message.payload == data
    assert type(event.message.payload) is bytes


def test_clean_eof() -> None:
    client, server = connected()
    assert drain(server, client.send(Message("ping")), eof=True) == [
        MessageReceived(Message("ping")),
        ConnectionClosed(clean=True),
    ]
    assert server.state is ConnectionState.CLOSED
    assert server.next_event() == ConnectionClosed(clean=True)
    with pytest.raises(LocalProtocolError):
        server.receive_data(b"more")
    with pytest.raises(LocalProtocolError):
        server.send(Message("ping"))


def test_truncated_frame_then_eof() -> None:
    client, server = connected()
    data = client.send(Message("send", payload=b"x" * 100))
    assert drain(server, data[:-1]) == []
    with pytest.raises(ProtocolError, match="connection closed mid-record"):
        drain(server, eof=True)
    assert server.state is ConnectionState.ERROR


def test_trailing_garbage_breaks_the_connection() -> None:
    client, server = connected()
    server.receive_data(client.send(Message("ping")) + b"\x00garbage")
    assert server.next_event() == MessageReceived(Message("ping"))
    with pytest.raises(ProtocolError, match="bad record header"):
        server.next_event()
    assert server.state is ConnectionState.ERROR
    assert server.data_to_send() == b""  # no REFUSE once authenticated
    with pytest.raises(LocalProtocolError, match="failed earlier: bad record header"):
        server.next_event()
    with pytest.raises(LocalProtocolError):
        server.receive_data(b"x")


def sealed(conn: Connection, frame: bytes) -> bytes:
    """``frame`` (any bytes) sealed in a record as ``conn`` would seal a message's frame."""
    writer = conn._writer
    assert writer is not None
    writer.add(LANE_DATA, [frame])
    records = conn.seal(len(frame) + 1000)
    assert records is not None
    return bytes(records)


def test_handshake_frame_after_authentication() -> None:
    client, server = connected()
    with pytest.raises(ProtocolError, match="unknown message keys"):
        drain(server, sealed(client, encode_frame({"op": "hello", "body": b""})))


def test_plain_frame_after_authentication_is_refused() -> None:
    _, server = connected()
    with pytest.raises(ProtocolError, match="bad record header"):
        drain(server, encode_frame({"op": "send"}, pickle.dumps(1)))
    assert server.state is ConnectionState.ERROR


def test_unknown_op_after_authentication_is_handed_up() -> None:
    client, server = connected()
    (event,) = drain(server, sealed(client, encode_frame({"op": "frobnicate", "rid": 3})))
    assert isinstance(event, MessageReceived)
    assert (event.message.op, event.message.rid) == ("frobnicate", 3)
    assert server.state is ConnectionState.AUTHENTICATED


def test_frame_limits_after_authentication() -> None:
    client, server = connected(max_frame_size=1000)
    with pytest.raises(ValueError, match="exceeds limit 1000"):
        client.send(Message("send", payload=b"x" * 1000))
    big = sealed(client, encode_frame({"op": "send"}, b"x" * 2000))
    with pytest.raises(ProtocolError, match="exceeds limit 1000"):
        drain(server, big)


def test_send_requires_authentication() -> None:
    client = Connection(Role.CLIENT, SECRET, CLIENT_ID)
    client.start()
    with pytest.raises(LocalProtocolError, match="cannot send while handshaking"):
        client.send(Message("ping"))
