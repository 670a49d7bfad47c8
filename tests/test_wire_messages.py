"""Message model: control map layout, validation on receive and on local construction."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from discoro.errors import ProtocolError
from discoro.wire import OPS, Message, decode_message, message_control


def test_ops_are_the_documented_set() -> None:
    assert {
        "send",
        "deliver",
        "control_send",
        "control_deliver",
        "reply",
        "monitor",
        "notify_exit",
        "terminate",
        "throw",
        "locate",
        "subscribe",
        "unsubscribe",
        "channel_send",
        "channel_deliver",
        "rci_call",
        "file_begin",
        "file_chunk",
        "file_end",
        "del_file",
        "ping",
        "pong",
        "link_retired",
        "peer_closed",
    } == OPS
    assert isinstance(OPS, frozenset)


@pytest.mark.parametrize(
    ("message", "control"),
    [
        (Message("ping"), {"op": "ping"}),
        (Message("locate", 7), {"op": "locate", "rid": 7}),
        (
            Message("reply", 7, {"value": [1, "a"]}),
            {"op": "reply", "rid": 7, "f": {"value": [1, "a"]}},
        ),
        (Message("send", fields={"to": "c"}, payload=b"p"), {"op": "send", "f": {"to": "c"}}),
    ],
)
def test_control_layout_and_round_trip(message: Message, control: dict[str, Any]) -> None:
    assert message_control(message) == control
    assert decode_message(control, message.payload) == message


def test_defaults_are_fresh_and_frozen() -> None:
    a, b = Message("ping"), Message("ping")
    assert a.rid == 0 and a.payload is None and a.fields == {}
    assert a.fields is not b.fields
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(a, "op", "pong")  # noqa: B010


def test_decoded_message_is_a_real_message() -> None:
    decoded = decode_message({"op": "send", "rid": 3, "f": {"x": 1}}, b"")
    assert type(decoded) is Message
    assert (decoded.op, decoded.rid, decoded.fields, decoded.payload) == ("send", 3, {"x": 1}, b"")
    assert decode_message({"op": "ping"}, None).fields == {}
    assert (
        decode_message({"op": "ping"}, None).fields
        is not decode_message({"op": "ping"}, None).fields
    )


@pytest.mark.parametrize(
    ("control", "match"),
    [
        ({"op": b"send"}, "bad op b'send'"),
        ({}, "bad op None"),
        ({"op": ""}, "bad op ''"),
        ({"op": "x" * 65}, "bad op"),
        ({"op": "hello", "body": b""}, "unknown message keys \\['body'\\]"),
        ({"op": "send", "rid": -1}, "bad request id"),
        ({"op": "send", "rid": True}, "bad request id"),
        ({"op": "send", "rid": 1.0}, "bad request id"),
        ({"op": "reply"}, "reply without the request id"),
        ({"op": "send", "f": [1]}, "fields must be a map"),
        ({"op": "send", "f": {b"k": 1}}, "field name b'k' is not a str"),
        ({"op": "send", "extra": 1}, "unknown message keys \\['extra'\\]"),
    ],
)
def test_bad_control_is_a_protocol_error(control: dict[str, Any], match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_message(control, None)


def test_unknown_but_well_formed_op_is_handed_up() -> None:
    """A newer peer's op is not a protocol error: the upper layer answers it."""
    message = decode_message({"op": "frobnicate", "rid": 7, "f": {"x": 1}}, None)
    assert (message.op, message.rid, message.fields) == ("frobnicate", 7, {"x": 1})


def test_trusted_message_skips_checks_but_is_a_message() -> None:
    from discoro.wire.messages import trusted_message

    message = trusted_message("send", 0, {"c": 1}, b"p")
    assert message == Message("send", 0, {"c": 1}, b"p")
    assert trusted_message("ping").fields == {}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"op": "bogus"}, ValueError),
        ({"op": "send", "rid": -2}, ValueError),
        ({"op": "reply", "rid": 0}, ValueError),
        ({"op": "send", "fields": {1: 2}}, ValueError),
        ({"op": "send", "payload": "text"}, TypeError),
    ],
)
def test_local_construction_is_validated(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        Message(**kwargs)
