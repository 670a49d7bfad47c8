"""Handshake: mutual authentication, and the attacks and mistakes it must refuse."""

from __future__ import annotations

import pickle
from typing import Any

import msgpack
import pytest

from discoro.errors import AuthenticationError, LocalProtocolError, ProtocolError, VersionMismatch
from discoro.wire import (
    NEED_DATA,
    Connection,
    ConnectionClosed,
    ConnectionState,
    Event,
    Handshake,
    HandshakeComplete,
    Identity,
    Role,
    encode_frame,
)
from discoro.wire.frames import FrameDecoder
from discoro.wire.handshake import refusal

SECRET = b"S3cr3t-that-must-never-travel-!!"
CLIENT_ID = Identity("client", "10.0.0.1", 51351, "c" * 32)
SERVER_ID = Identity("server", "10.0.0.2", 51352, "s" * 32)

UNPICKLED = False


def _set_flag() -> None:
    global UNPICKLED
    UNPICKLED = True


class Booby:
    """Unpickling this sets UNPICKLED: proof that someone called pickle.loads on it."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_set_flag, ())


def feed(conn: Connection, data: bytes) -> list[Event]:
    conn.receive_data(data)
    events: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
        if isinstance(event, ConnectionClosed):
            break
    return events


def pair(client_secret: bytes = SECRET, server_secret: bytes = SECRET) -> tuple[Connection, ...]:
    client = Connection(Role.CLIENT, client_secret, CLIENT_ID)
    server = Connection(Role.SERVER, server_secret, SERVER_ID)
    client.start()
    return client, server


def frames(data: bytes) -> list[dict[str, Any]]:
    decoder = FrameDecoder()
    decoder.feed(data)
    result = []
    while (frame := decoder.next_frame()) is not None:
        result.append(frame.control)
    return result


def test_mutual_authentication_exchanges_identities() -> None:
    client, server = pair()
    hello = client.data_to_send()
    assert feed(server, hello) == []
    server_hello = server.data_to_send()
    assert feed(client, server_hello) == []
    auth = client.data_to_send()
    assert feed(server, auth) == [HandshakeComplete(CLIENT_ID)]
    ok = server.data_to_send()
    assert feed(client, ok) == [HandshakeComplete(SERVER_ID)]
    assert client.state is server.state is ConnectionState.AUTHENTICATED
    assert (client.peer, server.peer) == (SERVER_ID, CLIENT_ID)
    assert [c["op"] for c in frames(hello + server_hello + auth + ok)] == [
        "hello",
        "hello",
        "auth",
        "ok",
    ]
    assert SECRET not in hello + server_hello + auth + ok


def test_nonces_are_fresh_per_connection() -> None:
    first = frames(pair()[0].data_to_send())[0]["body"]
    second = frames(pair()[0].data_to_send())[0]["body"]
    assert msgpack.unpackb(first)["nonce"] != msgpack.unpackb(second)["nonce"]


def test_client_with_wrong_secret_fails_on_both_sides() -> None:
    client, server = pair(client_secret=b"wrong")
    feed(server, client.data_to_send())
    with pytest.raises(AuthenticationError, match=r"peer failed authentication: wrong secret\?"):
        feed(client, server.data_to_send())
    assert client.state is ConnectionState.ERROR
    refuse = client.data_to_send()
    assert frames(refuse)[0]["op"] == "refuse"
    with pytest.raises(AuthenticationError, match="peer refused the connection: auth"):
        feed(server, refuse)
    assert server.data_to_send() == b""  # a refusal is not answered


def test_tampered_auth_fails_on_both_sides() -> None:
    client, server = pair()
    feed(server, client.data_to_send())
    feed(client, server.data_to_send())
    auth = bytearray(client.data_to_send())
    auth[-1] ^= 1  # flip a bit of the client's MAC
    with pytest.raises(AuthenticationError, match="wrong secret"):
        feed(server, bytes(auth))
    with pytest.raises(AuthenticationError, match="peer refused"):
        feed(client, server.data_to_send())


def test_replayed_client_messages_fail() -> None:
    client, server = pair()
    hello = client.data_to_send()
    feed(server, hello)
    feed(client, server.data_to_send())
    auth = client.data_to_send()
    assert feed(server, auth) == [HandshakeComplete(CLIENT_ID)]
    # An eavesdropper replays the recorded HELLO and AUTH to a fresh server.
    victim = Connection(Role.SERVER, SECRET, SERVER_ID)
    assert feed(victim, hello) == []
    with pytest.raises(AuthenticationError):
        feed(victim, auth)
    assert victim.peer is None


def test_reflected_server_mac_fails() -> None:
    # The attacker (no secret) sends a HELLO, then offers the server's own MAC as its AUTH.
    attacker = Handshake(Role.CLIENT, b"attacker does not know it", CLIENT_ID)
    server = Connection(Role.SERVER, SECRET, SERVER_ID)
    feed(server, encode_frame(attacker.start()[0]))
    server_hello = frames(server.data_to_send())[0]
    with pytest.raises(AuthenticationError):
        feed(server, encode_frame({"op": "auth", "mac": server_hello["mac"]}))


def test_echoed_nonce_is_refused() -> None:
    client, _ = pair()
    hello = frames(client.data_to_send())[0]
    reflected = {"op": "hello", "body": hello["body"], "mac": b"\x00" * 32}
    with pytest.raises(AuthenticationError, match="echoed our own nonce"):
        feed(client, encode_frame(reflected))


def newer_client_hello() -> bytes:
    body = msgpack.packb({"version": 5, "nonce": b"n" * 32, "future": "layout"})
    return encode_frame({"op": "hello", "body": body})


def test_version_mismatch_detected_by_server_is_clear_on_both_sides() -> None:
    client, server = pair()
    client.data_to_send()
    with pytest.raises(
        VersionMismatch, match=r"^peer speaks discoro protocol version 5, we speak 4"
    ):
        feed(server, newer_client_hello())
    with pytest.raises(VersionMismatch, match=r"refused the connection: peer speaks .* version 5"):
        feed(client, server.data_to_send())


def test_version_mismatch_detected_by_client() -> None:
    client, _ = pair()
    client.data_to_send()
    body = msgpack.packb({"version": 5, "nonce": b"n" * 32})
    with pytest.raises(
        VersionMismatch, match=r"^peer speaks discoro protocol version 5, we speak 4"
    ):
        feed(client, encode_frame({"op": "hello", "body": body, "mac": b"m" * 32}))
    (refuse,) = frames(client.data_to_send())
    assert refuse == {
        "op": "refuse",
        "kind": "version",
        "reason": "peer speaks discoro protocol version 5, we speak 4: "
        "run the same discoro release on both sides",
    }
    newer = Handshake(Role.SERVER, SECRET, SERVER_ID, version=4)
    with pytest.raises(VersionMismatch, match="peer refused the connection: peer speaks"):
        newer.receive(refuse)


def test_pickle_payload_before_authentication_is_never_unpickled() -> None:
    booby = pickle.dumps(Booby())
    hello = pair()[0].data_to_send()
    server_cases = [
        encode_frame({"op": "send"}, booby),
        encode_frame({"op": "hello"}, booby),
        hello + encode_frame({"op": "auth"}, booby),  # mid-handshake
    ]
    for data in server_cases:
        server = Connection(Role.SERVER, SECRET, SERVER_ID)
        with pytest.raises(ProtocolError, match="payload before authentication"):
            feed(server, data)
        assert server.state is ConnectionState.ERROR
    client, server = pair()
    feed(server, client.data_to_send())
    with pytest.raises(ProtocolError, match="payload before authentication"):
        feed(client, server.data_to_send() + encode_frame({"op": "ok"}, booby))
    for conn in (Connection(Role.SERVER, SECRET, SERVER_ID), pair()[0]):
        with pytest.raises(ProtocolError, match="bad frame magic"):
            feed(conn, booby)  # a bare pickle instead of a frame
    assert not UNPICKLED
    pickle.loads(booby)  # the booby trap works, so the check above means something
    assert UNPICKLED


@pytest.mark.parametrize(
    ("control", "match"),
    [
        ({"op": "send"}, "unexpected 'send' during the handshake"),
        ({"op": "ok"}, "unexpected 'ok'"),
        ({"op": "auth", "mac": b"x" * 32}, "unexpected 'auth'"),
        ({"op": "hello", "body": "text"}, "'body' must be bytes"),
        ({"op": "hello", "body": b"\x93"}, "malformed handshake hello"),
        ({"op": "hello", "body": b"\x01"}, "expected a map"),
        ({"op": "hello", "body": msgpack.packb({"nonce": b""})}, "no protocol version"),
        ({"op": "hello", "body": msgpack.packb({"version": 4})}, "malformed handshake"),
        ({"op": "hello", "body": b"", "mac": b""}, "malformed handshake 'hello'"),
    ],
)
def test_malformed_handshake_is_refused(control: dict[str, Any], match: str) -> None:
    server = Connection(Role.SERVER, SECRET, SERVER_ID)
    with pytest.raises(ProtocolError, match=match):
        feed(server, encode_frame(control))
    assert frames(server.data_to_send())[0]["op"] == "refuse"


def test_bad_identity_in_hello_is_refused() -> None:
    hello = frames(pair()[0].data_to_send())[0]
    body = msgpack.unpackb(hello["body"])
    body["port"] = 70000
    server = Connection(Role.SERVER, SECRET, SERVER_ID)
    with pytest.raises(ProtocolError, match=r"port must be an int in 0\.\.65535"):
        feed(server, encode_frame({"op": "hello", "body": msgpack.packb(body)}))


def test_big_handshake_frame_is_refused_at_its_header() -> None:
    data = encode_frame({"op": "hello", "body": b"x" * 5000})
    server = Connection(Role.SERVER, SECRET, SERVER_ID)
    with pytest.raises(ProtocolError, match="exceeds limit 4096"):
        feed(server, data[:12])


def test_eof_during_handshake_is_not_clean() -> None:
    client, server = pair()
    feed(server, client.data_to_send())
    assert feed(server, b"") == [ConnectionClosed(clean=False)]
    assert server.state is ConnectionState.CLOSED
    assert feed(client, server.data_to_send()[:20]) == []
    with pytest.raises(ProtocolError, match="closed mid-frame"):
        feed(client, b"")


def test_misuse_is_a_local_error() -> None:
    client, _ = pair()
    with pytest.raises(LocalProtocolError):
        client.start()
    fresh = Connection(Role.CLIENT, SECRET, CLIENT_ID)
    with pytest.raises(LocalProtocolError, match="start"):
        fresh.next_event()
    with pytest.raises(ValueError, match="master key"):
        Connection(Role.CLIENT, b"", CLIENT_ID)


def test_refusal_reasons_are_sanitised() -> None:
    handshake = Handshake(Role.SERVER, SECRET, SERVER_ID)
    with pytest.raises(ProtocolError, match=r"refused the connection: bad\?\?news$"):
        handshake.receive({"op": "refuse", "kind": "other", "reason": "bad\x1b\nnews"})
    assert refusal(ProtocolError("x"))["kind"] == "protocol"
