"""Discovery datagrams: the signed UDP announcement a process broadcasts so peers can dial it.

Datagram layout: ``b"DSCV"`` + one msgpack map (never pickle) + a 32-byte MAC, at most 1024
bytes in all::

    {"version": int, "tag": 8 bytes, "time": float, "name": str, "addr": str, "port": int,
     "udp_port": int, "sid": str, "relay": bool, "rebroadcast": bool}

Keys (`DiscoveryKeys`, from `discovery_keys`) come from the key schedule (`wire.keys`), never
from the raw secret: ``tag`` marks the cluster (so a process can ignore another cluster on
the same LAN, and say so once), ``mac_key`` signs the whole datagram (HMAC-SHA256 over magic
and map). A sniffed datagram therefore lets an attacker test secret guesses only at scrypt
speed. ``time`` is the sender's wall clock (seconds since the epoch): a datagram more than
`REPLAY_WINDOW` seconds from the receiver's clock is refused (`StaleAnnouncement`); within the
window the receiver drops exact duplicates by their MAC (`datagram_mac`).

Invariants: `decode_announcement` checks size first, then magic and map, then the tag
(ForeignCluster), then the MAC (`ForgedAnnouncement`), then the version (VersionMismatch),
then every field, then the time (`StaleAnnouncement`); "tag" and "version" keep their meaning
in every protocol version. Each failure is a ProtocolError (or a subclass), so the caller can
log each kind once and drop the datagram. Nothing from a datagram is trusted before its MAC
checked out.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from discoro.errors import ForeignCluster, ProtocolError, VersionMismatch
from discoro.wire.handshake import PROTOCOL_VERSION
from discoro.wire.identity import MAX_NAME_LEN, MAX_SID_LEN
from discoro.wire.keys import derive, stretch
from discoro.wire.safepack import pack, unpack_map

__all__ = [
    "DISCOVERY_MAGIC",
    "MAC_SIZE",
    "MAX_DATAGRAM_SIZE",
    "REPLAY_WINDOW",
    "TAG_SIZE",
    "Announcement",
    "DiscoveryKeys",
    "ForgedAnnouncement",
    "StaleAnnouncement",
    "cluster_tag",
    "datagram_mac",
    "decode_announcement",
    "discovery_keys",
    "encode_announcement",
    "keys_from_master",
]

DISCOVERY_MAGIC = b"DSCV"
MAX_DATAGRAM_SIZE = 1024
TAG_SIZE = 8
MAC_SIZE = 32
#: Seconds a datagram's time may differ from the receiver's clock (either way).
REPLAY_WINDOW = 20.0

_TEXT_LIMITS = {"name": MAX_NAME_LEN, "addr": MAX_NAME_LEN, "sid": MAX_SID_LEN}
_KEYS = frozenset(
    {
        "version",
        "tag",
        "time",
        "name",
        "addr",
        "port",
        "udp_port",
        "sid",
        "relay",
        "rebroadcast",
    }
)


class ForgedAnnouncement(ProtocolError):
    """A datagram with our cluster's tag whose MAC is wrong (forged or edited)."""


class StaleAnnouncement(ProtocolError):
    """A correctly signed datagram whose time is outside the replay window."""


class DiscoveryKeys(NamedTuple):
    """What discovery needs from the secret: the cluster tag and the MAC key."""

    tag: bytes
    mac_key: bytes


def discovery_keys(secret: bytes) -> DiscoveryKeys:
    """The discovery keys of the cluster whose secret is ``secret`` (one scrypt, cached)."""
    return keys_from_master(stretch(secret))


def keys_from_master(master: bytes) -> DiscoveryKeys:
    """The discovery keys for the cluster's master key (`wire.keys.stretch` of its secret)."""
    return DiscoveryKeys(derive(master, "discovery tag")[:TAG_SIZE], derive(master, "discovery"))


def cluster_tag(secret: bytes) -> bytes:
    """The 8-byte tag that marks a cluster's datagrams (derived from, not revealing, secret)."""
    return discovery_keys(secret).tag


def _problem(values: dict[str, Any]) -> str:
    """Why these values cannot form an announcement, or "" when they can."""
    if values.keys() != _KEYS:
        return f"announcement keys {sorted(values)}, expected {sorted(_KEYS)}"
    if type(values["version"]) is not int:
        return "announcement version must be an int"
    tag = values["tag"]
    if type(tag) is not bytes or len(tag) != TAG_SIZE:
        return f"announcement tag must be {TAG_SIZE} bytes"
    if type(values["time"]) is not float:
        return "announcement time must be a float"
    for key, limit in _TEXT_LIMITS.items():
        text = values[key]
        if type(text) is not str or not text or len(text) > limit:
            return f"announcement {key} must be a str of 1 to {limit} characters"
    for key in ("port", "udp_port"):
        port = values[key]
        if type(port) is not int or not 1 <= port <= 65535:
            return f"announcement {key} must be an int in 1..65535, not {port!r}"
    for key in ("relay", "rebroadcast"):
        if type(values[key]) is not bool:
            return f"announcement {key} must be a bool"
    return ""


@dataclass(frozen=True, slots=True)
class Announcement:
    """A process announcing itself: where to dial it (TCP ``addr``/``port``) and who it is."""

    tag: bytes
    name: str
    addr: str
    port: int
    udp_port: int
    sid: str
    time: float  # the sender's wall clock when it made the datagram
    relay: bool = False  # the receiver should forward it to sibling processes on its host
    rebroadcast: bool = False  # the receiver should re-broadcast it on its own network
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        problem = _problem(asdict(self))
        if problem:
            raise ValueError(problem)


def _mac(mac_key: bytes, signed: bytes | memoryview) -> bytes:
    return hmac.digest(mac_key, signed, "sha256")


def encode_announcement(announcement: Announcement, mac_key: bytes) -> bytes:
    """The signed datagram for ``announcement``; ValueError if it would exceed 1024 bytes."""
    signed = DISCOVERY_MAGIC + pack(asdict(announcement))
    data = signed + _mac(mac_key, signed)
    if len(data) > MAX_DATAGRAM_SIZE:
        raise ValueError(f"announcement of {len(data)} bytes exceeds {MAX_DATAGRAM_SIZE}")
    return data


def datagram_mac(data: bytes) -> bytes:
    """The MAC of a datagram (what tells two announcements apart, for duplicate checks)."""
    return data[-MAC_SIZE:]


def decode_announcement(data: bytes, keys: DiscoveryKeys, now: float) -> Announcement:
    """The announcement in datagram ``data``, which must be signed with our cluster's
    ``keys`` and made within `REPLAY_WINDOW` seconds of ``now`` (wall clock).

    Raises ForeignCluster (another cluster's tag), ForgedAnnouncement (our tag, wrong MAC),
    VersionMismatch (another protocol version), StaleAnnouncement (too old or too new) or
    ProtocolError (anything else malformed).
    """
    if len(data) > MAX_DATAGRAM_SIZE:
        raise ProtocolError(f"discovery datagram of {len(data)} bytes exceeds limit")
    if data[: len(DISCOVERY_MAGIC)] != DISCOVERY_MAGIC:
        raise ProtocolError("bad discovery magic (not a discoro datagram)")
    if len(data) < len(DISCOVERY_MAGIC) + MAC_SIZE + 1:
        raise ProtocolError("discovery datagram too short to be signed")
    view = memoryview(data)
    signed, mac = view[:-MAC_SIZE], data[-MAC_SIZE:]
    values = unpack_map(signed[len(DISCOVERY_MAGIC) :], "discovery datagram")
    their_tag = values.get("tag")
    if type(their_tag) is not bytes or len(their_tag) != TAG_SIZE:
        raise ProtocolError(f"malformed discovery datagram: tag must be {TAG_SIZE} bytes")
    if not hmac.compare_digest(their_tag, keys.tag):
        raise ForeignCluster(f"discovery datagram from another cluster (tag {their_tag.hex()})")
    if not hmac.compare_digest(mac, _mac(keys.mac_key, signed)):
        raise ForgedAnnouncement("discovery datagram with our cluster's tag but a wrong MAC")
    version = values.get("version")
    if type(version) is not int:
        raise ProtocolError("malformed discovery datagram: no protocol version")
    if version != PROTOCOL_VERSION:
        raise VersionMismatch(
            f"discovery datagram of protocol version {version} is not ours ({PROTOCOL_VERSION})"
        )
    problem = _problem(values)
    if problem:
        raise ProtocolError(f"malformed discovery datagram: {problem}")
    skew = now - values["time"]
    if not -REPLAY_WINDOW <= skew <= REPLAY_WINDOW:
        raise StaleAnnouncement(
            f"discovery datagram made {skew:+.1f} s from our clock (window {REPLAY_WINDOW} s):"
            " a replay, or clocks out of step"
        )
    return Announcement(**values)
