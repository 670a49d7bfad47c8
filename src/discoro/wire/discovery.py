"""Discovery datagrams: the UDP announcement a process broadcasts so peers can dial it.

Datagram layout: ``b"DSCV"`` + one msgpack map (never pickle), at most 1024 bytes in all::

    {"version": int, "tag": 8 bytes, "name": str, "addr": str, "port": int,
     "udp_port": int, "sid": str, "relay": bool, "rebroadcast": bool}

``tag`` is `cluster_tag` of the cluster's secret: it lets a process ignore another cluster
on the same LAN without connecting, and reveals nothing useful about the secret. The tag
does not authenticate anything (it is sent in clear); the handshake does.

Invariants: `decode_announcement` checks size first, then magic and map, then the tag
(ForeignCluster), then the version (VersionMismatch), then every field; "tag" and
"version" keep their meaning in every protocol version. Each failure is a ProtocolError
(or those subclasses), so the caller can log each kind once and drop the datagram.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import asdict, dataclass
from typing import Any

from discoro.errors import ForeignCluster, ProtocolError, VersionMismatch
from discoro.wire.handshake import PROTOCOL_VERSION
from discoro.wire.identity import MAX_NAME_LEN, MAX_SID_LEN
from discoro.wire.safepack import pack, unpack_map

__all__ = [
    "DISCOVERY_MAGIC",
    "MAX_DATAGRAM_SIZE",
    "TAG_SIZE",
    "Announcement",
    "cluster_tag",
    "decode_announcement",
    "encode_announcement",
]

DISCOVERY_MAGIC = b"DSCV"
MAX_DATAGRAM_SIZE = 1024
TAG_SIZE = 8

_TEXT_LIMITS = {"name": MAX_NAME_LEN, "addr": MAX_NAME_LEN, "sid": MAX_SID_LEN}
_KEYS = frozenset(
    {"version", "tag", "name", "addr", "port", "udp_port", "sid", "relay", "rebroadcast"}
)


def cluster_tag(secret: bytes) -> bytes:
    """The 8-byte tag that marks a cluster's datagrams (derived from, not revealing, secret)."""
    return hmac.new(secret, b"discoro cluster tag", hashlib.sha256).digest()[:TAG_SIZE]


def _problem(values: dict[str, Any]) -> str:
    """Why these values cannot form an announcement, or "" when they can."""
    if values.keys() != _KEYS:
        return f"announcement keys {sorted(values)}, expected {sorted(_KEYS)}"
    if type(values["version"]) is not int:
        return "announcement version must be an int"
    tag = values["tag"]
    if type(tag) is not bytes or len(tag) != TAG_SIZE:
        return f"announcement tag must be {TAG_SIZE} bytes"
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
    relay: bool = False  # the receiver should forward it to sibling processes on its host
    rebroadcast: bool = False  # the receiver should re-broadcast it on its own network
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        problem = _problem(asdict(self))
        if problem:
            raise ValueError(problem)


def encode_announcement(announcement: Announcement) -> bytes:
    """The datagram for ``announcement``; ValueError if it would exceed 1024 bytes."""
    data = DISCOVERY_MAGIC + pack(asdict(announcement))
    if len(data) > MAX_DATAGRAM_SIZE:
        raise ValueError(f"announcement of {len(data)} bytes exceeds {MAX_DATAGRAM_SIZE}")
    return data


def decode_announcement(data: bytes, tag: bytes) -> Announcement:
    """The announcement in datagram ``data``, which must carry our cluster's ``tag``.

    Raises ForeignCluster (another cluster's tag), VersionMismatch (another protocol
    version) or ProtocolError (anything else malformed).
    """
    if len(data) > MAX_DATAGRAM_SIZE:
        raise ProtocolError(f"discovery datagram of {len(data)} bytes exceeds limit")
    if data[: len(DISCOVERY_MAGIC)] != DISCOVERY_MAGIC:
        raise ProtocolError("bad discovery magic (not a discoro datagram)")
    values = unpack_map(memoryview(data)[len(DISCOVERY_MAGIC) :], "discovery datagram")
    their_tag = values.get("tag")
    if type(their_tag) is not bytes or len(their_tag) != TAG_SIZE:
        raise ProtocolError(f"malformed discovery datagram: tag must be {TAG_SIZE} bytes")
    if not hmac.compare_digest(their_tag, tag):
        raise ForeignCluster(f"discovery datagram from another cluster (tag {their_tag.hex()})")
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
    return Announcement(**values)
