"""Discovery datagrams: round trip, cluster tag, version, and every malformed variant."""

from __future__ import annotations

import contextlib
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discoro.errors import ForeignCluster, ProtocolError, VersionMismatch
from discoro.wire import (
    MAX_DATAGRAM_SIZE,
    PROTOCOL_VERSION,
    Announcement,
    cluster_tag,
    decode_announcement,
    encode_announcement,
)

TAG = cluster_tag(b"our secret")
ANNOUNCEMENT = Announcement(
    tag=TAG,
    name="node-1",
    addr="192.168.1.5",
    port=51351,
    udp_port=51350,
    sid="ab" * 16,
    relay=True,
)


def fields(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "version": PROTOCOL_VERSION,
        "tag": TAG,
        "name": "n",
        "addr": "10.0.0.1",
        "port": 1000,
        "udp_port": 51350,
        "sid": "s",
        "relay": False,
        "rebroadcast": False,
    }
    values.update(changes)
    return values


def datagram(values: Any) -> bytes:
    return b"DSCV" + msgpack.packb(values)


def test_round_trip() -> None:
    data = encode_announcement(ANNOUNCEMENT)
    assert data.startswith(b"DSCV")
    assert len(data) <= MAX_DATAGRAM_SIZE
    assert decode_announcement(data, TAG) == ANNOUNCEMENT
    again = Announcement(**{**fields(), "rebroadcast": True})
    assert decode_announcement(encode_announcement(again), TAG) == again


def test_cluster_tag() -> None:
    assert len(TAG) == 8
    assert cluster_tag(b"our secret") == TAG
    assert cluster_tag(b"other secret") != TAG
    assert b"our secret" not in encode_announcement(ANNOUNCEMENT)


def test_foreign_cluster() -> None:
    data = encode_announcement(ANNOUNCEMENT)
    with pytest.raises(ForeignCluster, match="another cluster"):
        decode_announcement(data, cluster_tag(b"other secret"))


def test_version_mismatch_and_foreign_tag_wins() -> None:
    newer = PROTOCOL_VERSION + 1
    with pytest.raises(
        VersionMismatch, match=f"version {newer} is not ours \\({PROTOCOL_VERSION}\\)"
    ):
        decode_announcement(datagram(fields(version=newer)), TAG)
    # Another cluster's datagram is reported as foreign whatever its version.
    with pytest.raises(ForeignCluster):
        decode_announcement(datagram(fields(version=2, tag=b"\x00" * 8)), TAG)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"XXXX" + msgpack.packb(fields()), "bad discovery magic"),
        (b"", "bad discovery magic"),
        (b"DSCV", "malformed discovery datagram"),
        (b"DSCV\x81", "malformed discovery datagram"),
        (datagram([1, 2]), "expected a map"),
        (datagram({**fields(), 5: 1}), "malformed discovery datagram"),
        (datagram(fields(tag=b"short")), "tag must be 8 bytes"),
        (datagram(fields(tag="strtag12")), "tag must be 8 bytes"),
        (datagram(fields(version="1")), "no protocol version"),
        (datagram({k: v for k, v in fields().items() if k != "sid"}), "keys"),
        (datagram(fields(extra=1)), "keys"),
        (datagram(fields(port="80")), "port must be an int"),
        (datagram(fields(port=True)), "port must be an int"),
        (datagram(fields(port=0)), "port must be an int in 1..65535"),
        (datagram(fields(udp_port=65536)), "udp_port must be an int in 1..65535"),
        (datagram(fields(name="")), "name must be a str"),
        (datagram(fields(addr=b"1.2.3.4")), "addr must be a str"),
        (datagram(fields(relay=1)), "relay must be a bool"),
        (datagram(fields(name="x" * 1100)), "exceeds limit"),
    ],
)
def test_malformed(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as info:
        decode_announcement(data, TAG)
    assert type(info.value) is ProtocolError


def test_encode_refuses_oversize_and_invalid() -> None:
    wide = Announcement(tag=TAG, name="€" * 255, addr="€" * 255, port=1, udp_port=1, sid="s")
    with pytest.raises(ValueError, match="exceeds 1024"):
        encode_announcement(wide)
    with pytest.raises(ValueError, match="port"):
        Announcement(tag=TAG, name="n", addr="a", port=0, udp_port=1, sid="s")
    with pytest.raises(ValueError, match="tag"):
        Announcement(tag=b"123", name="n", addr="a", port=1, udp_port=1, sid="s")


@settings(derandomize=True, database=None, deadline=None, max_examples=300)
@given(st.binary(max_size=200).map(lambda b: b"DSCV" + b) | st.binary(max_size=50))
def test_fuzz_only_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_announcement(data, TAG)
