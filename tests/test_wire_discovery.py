"""Discovery datagrams: round trip, keys, MAC, replay window, version, and every malformed
variant."""

from __future__ import annotations

import contextlib
import hmac
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
from discoro.wire.discovery import (
    MAC_SIZE,
    REPLAY_WINDOW,
    ForgedAnnouncement,
    StaleAnnouncement,
    datagram_mac,
    discovery_keys,
    keys_from_master,
)
from discoro.wire.keys import derive, stretch

KEYS = discovery_keys(b"our secret")
TAG = KEYS.tag
NOW = 1_800_000_000.0
ANNOUNCEMENT = Announcement(
    tag=TAG,
    time=NOW,
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
        "time": NOW,
        "relay": False,
        "rebroadcast": False,
    }
    values.update(changes)
    return values


def datagram(values: Any, key: bytes = KEYS.mac_key) -> bytes:
    """A datagram of ``values``, correctly signed (so only its content can be wrong)."""
    signed = b"DSCV" + msgpack.packb(values)
    return signed + hmac.digest(key, signed, "sha256")


def decode(data: bytes, now: float = NOW) -> Announcement:
    return decode_announcement(data, KEYS, now)


def test_round_trip() -> None:
    data = encode_announcement(ANNOUNCEMENT, KEYS.mac_key)
    assert data.startswith(b"DSCV")
    assert len(data) <= MAX_DATAGRAM_SIZE
    assert decode(data) == ANNOUNCEMENT
    again = Announcement(**{**fields(), "rebroadcast": True})
    assert decode(encode_announcement(again, KEYS.mac_key)) == again
    assert datagram_mac(data) == data[-MAC_SIZE:]


def test_keys_come_from_the_key_schedule_not_the_raw_secret() -> None:
    master = stretch(b"our secret")
    assert KEYS.mac_key == derive(master, "discovery")
    assert derive(master, "discovery tag")[:8] == TAG
    assert len(TAG) == 8
    assert cluster_tag(b"our secret") == TAG
    assert cluster_tag(b"other secret") != TAG
    raw = hmac.digest(b"our secret", b"DSCV", "sha256")
    data = encode_announcement(ANNOUNCEMENT, KEYS.mac_key)
    assert b"our secret" not in data
    assert raw[:8] not in data
    assert KEYS.mac_key not in data


def test_foreign_cluster() -> None:
    data = encode_announcement(ANNOUNCEMENT, KEYS.mac_key)
    with pytest.raises(ForeignCluster, match="another cluster"):
        decode_announcement(data, discovery_keys(b"other secret"), NOW)


def test_version_mismatch_and_foreign_tag_wins() -> None:
    newer = PROTOCOL_VERSION + 1
    with pytest.raises(
        VersionMismatch, match=rf"version {newer} is not ours \({PROTOCOL_VERSION}\)"
    ):
        decode(datagram(fields(version=newer)))
    # Another cluster's datagram is reported as foreign whatever its version.
    with pytest.raises(ForeignCluster):
        decode(datagram(fields(version=PROTOCOL_VERSION + 1, tag=b"\x00" * 8)))


@pytest.mark.parametrize(
    "change",
    [
        {"addr": "10.6.6.6"},  # the attack: copy an announcement, point it elsewhere
        {"port": 6666},
        {"relay": True},
        {"time": NOW + 1},
        {"sid": "t"},
    ],
)
def test_an_edited_announcement_is_forged(change: dict[str, Any]) -> None:
    original = encode_announcement(Announcement(**fields()), KEYS.mac_key)
    edited = datagram(fields(**change), key=b"\x00" * 32)[:-MAC_SIZE] + original[-MAC_SIZE:]
    with pytest.raises(ForgedAnnouncement, match="wrong MAC"):
        decode(edited)
    with pytest.raises(ForgedAnnouncement):  # signed with a key of its own making
        decode(datagram(fields(**change), key=derive(b"guess", "discovery")))
    with pytest.raises(ForgedAnnouncement):  # the bytes after the map are the MAC
        decode(original[:-1] + bytes([original[-1] ^ 1]))


def test_replay_window() -> None:
    data = encode_announcement(ANNOUNCEMENT, KEYS.mac_key)
    assert decode(data, NOW + REPLAY_WINDOW) == ANNOUNCEMENT
    assert decode(data, NOW - REPLAY_WINDOW) == ANNOUNCEMENT
    with pytest.raises(StaleAnnouncement, match="replay"):
        decode(data, NOW + REPLAY_WINDOW + 0.1)
    with pytest.raises(StaleAnnouncement):
        decode(data, NOW - REPLAY_WINDOW - 0.1)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"XXXX" + msgpack.packb(fields()), "bad discovery magic"),
        (b"", "bad discovery magic"),
        (b"DSCV", "too short"),
        (b"DSCV\x81" + bytes(MAC_SIZE), "malformed discovery datagram"),
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
        (datagram(fields(time=NOW.hex())), "time must be a float"),
        (datagram(fields(time=int(NOW))), "time must be a float"),
        (datagram(fields(name="x" * 1100)), "exceeds limit"),
    ],
)
def test_malformed(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as info:
        decode(data)
    assert type(info.value) is ProtocolError


def test_encode_refuses_oversize_and_invalid() -> None:
    wide = Announcement(
        tag=TAG, name="€" * 255, addr="€" * 255, port=1, udp_port=1, sid="s", time=NOW
    )
    with pytest.raises(ValueError, match="exceeds 1024"):
        encode_announcement(wide, KEYS.mac_key)
    with pytest.raises(ValueError, match="port"):
        Announcement(tag=TAG, name="n", addr="a", port=0, udp_port=1, sid="s", time=NOW)
    with pytest.raises(ValueError, match="tag"):
        Announcement(tag=b"123", name="n", addr="a", port=1, udp_port=1, sid="s", time=NOW)


@settings(derandomize=True, database=None, deadline=None, max_examples=300)
@given(st.binary(max_size=200).map(lambda b: b"DSCV" + b) | st.binary(max_size=50))
def test_fuzz_only_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(data)


def test_keys_from_the_master_key_are_the_same() -> None:
    assert keys_from_master(stretch(b"our secret")) == KEYS
