"""Liveness datagrams: signed UDP notes that say a process is alive while its loop is busy.

A server process runs user code on its event loop; a job that computes or blocks for a
minute stops the loop, and with it the TCP pings and pulses that say the process lives. A
thread that user code cannot block sends these datagrams instead (`discoro.net.liveness`).

Datagram layout: ``b"DLIV"`` + one msgpack map (never pickle) + a 32-byte MAC, at most
`MAX_LIVENESS_SIZE` bytes::

    {"version": int, "kind": str, "time": float, "sid": str, "addr": str, "port": int,
     "pid": int, "stuck": float, "cmd_port": int, "coros": [int, ...]}

Kinds (``addr``/``port``/``sid``/``pid`` always name the process the datagram is *about*):

- ``alive``: sent by that process: it lives; its loop last ran ``stuck`` seconds ago (0.0:
  its loop runs again, after notes that said it was stuck); its liveness thread takes
  commands on UDP ``cmd_port`` (0: none).
- ``terminate``: sent *to* that process's ``cmd_port``: the sender asked (over TCP) to
  terminate coroutines ``coros`` there; if the loop stays stuck, the process may end itself.
- ``ending``: sent by that process just before it ends itself: it ended because coroutines
  ``coros`` were terminated while its loop was stuck for ``stuck`` seconds.

Keys come from the key schedule (`wire.keys`), never from the raw secret. ``time`` is the
sender's wall clock: a datagram more than `REPLAY_WINDOW` seconds off the receiver's clock is
refused (`StaleLiveness`), and within the window `ReplayGuard` drops exact copies by their MAC.

Invariants: `decode_liveness` checks size, magic, MAC (`ForgedLiveness`), version, every field,
then the time, in that order; nothing from a datagram is trusted before its MAC checked out.
Each failure is a ProtocolError (or subclass), so the caller can drop the datagram and log
each kind once.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict, dataclass

from discoro.errors import ProtocolError
from discoro.wire.discovery import REPLAY_WINDOW
from discoro.wire.handshake import PROTOCOL_VERSION
from discoro.wire.identity import MAX_NAME_LEN, MAX_SID_LEN
from discoro.wire.keys import derive
from discoro.wire.safepack import pack, unpack_map

__all__ = [
    "KINDS",
    "LIVENESS_MAGIC",
    "MAX_CORO_IDS",
    "MAX_LIVENESS_SIZE",
    "ForgedLiveness",
    "LivenessNote",
    "ReplayGuard",
    "StaleLiveness",
    "decode_liveness",
    "encode_liveness",
    "liveness_key",
]

LIVENESS_MAGIC = b"DLIV"
MAX_LIVENESS_SIZE = 1024
MAC_SIZE = 32
MAX_CORO_IDS = 32  # coroutine ids one datagram may name
KINDS = frozenset({"alive", "terminate", "ending"})
_KEYS = frozenset(
    {"version", "kind", "time", "sid", "addr", "port", "pid", "stuck", "cmd_port", "coros"}
)


class ForgedLiveness(ProtocolError):
    """A liveness datagram whose MAC is wrong (forged, edited, or another cluster's)."""


class StaleLiveness(ProtocolError):
    """A correctly signed liveness datagram whose time is outside the replay window."""


def liveness_key(master: bytes) -> bytes:
    """The MAC key of liveness datagrams for the cluster's master key (`wire.keys.stretch`)."""
    return derive(master, "liveness")


@dataclass(frozen=True, slots=True)
class LivenessNote:
    """One liveness datagram (see the module docstring for the kinds)."""

    kind: str
    time: float  # the sender's wall clock
    sid: str
    addr: str
    port: int
    pid: int
    stuck: float = 0.0
    cmd_port: int = 0
    coros: tuple[int, ...] = ()
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        problem = _problem({**asdict(self), "coros": list(self.coros)})
        if problem:
            raise ValueError(problem)


def _problem(values: dict[str, object]) -> str:
    """Why these values cannot form a liveness datagram, or "" when they can."""
    if values.keys() != _KEYS:
        return f"liveness keys {sorted(values)}, expected {sorted(_KEYS)}"
    if values["kind"] not in KINDS:
        return f"liveness kind {values['kind']!r} is not one of {sorted(KINDS)}"
    for key in ("time", "stuck"):
        number = values[key]
        if not isinstance(number, float) or type(number) is not float or number != number:
            return f"liveness {key} must be a float (not NaN)"
        if key == "stuck" and number < 0:
            return "liveness stuck must not be negative"
    for key, limit in (("sid", MAX_SID_LEN), ("addr", MAX_NAME_LEN)):
        text = values[key]
        if type(text) is not str or not text or len(text) > limit:
            return f"liveness {key} must be a str of 1 to {limit} characters"
    for key, low in (("port", 1), ("cmd_port", 0)):
        port = values[key]
        if not isinstance(port, int) or type(port) is not int or not low <= port <= 65535:
            return f"liveness {key} must be an int in {low}..65535, not {port!r}"
    pid = values["pid"]
    if not isinstance(pid, int) or type(pid) is not int or pid <= 0:
        return "liveness pid must be a positive int"
    coros = values["coros"]
    if not isinstance(coros, list) or len(coros) > MAX_CORO_IDS:
        return f"liveness coros must be a list of at most {MAX_CORO_IDS} ints"
    if any(type(coro) is not int or coro < 0 for coro in coros):
        return "liveness coros must be non-negative ints"
    return ""


def _mac(key: bytes, signed: bytes | memoryview) -> bytes:
    return hmac.digest(key, signed, "sha256")


def encode_liveness(note: LivenessNote, key: bytes) -> bytes:
    """The signed datagram for ``note``."""
    signed = LIVENESS_MAGIC + pack({**asdict(note), "coros": list(note.coros)})
    data = signed + _mac(key, signed)
    if len(data) > MAX_LIVENESS_SIZE:
        raise ValueError(f"liveness datagram of {len(data)} bytes exceeds {MAX_LIVENESS_SIZE}")
    return data


def decode_liveness(data: bytes, key: bytes, now: float) -> LivenessNote:
    """The note in ``data``, which must be signed with ``key`` and made within
    `REPLAY_WINDOW` seconds of ``now`` (wall clock). Raises ForgedLiveness, StaleLiveness,
    or ProtocolError (anything else malformed, another protocol version included)."""
    if len(data) > MAX_LIVENESS_SIZE:
        raise ProtocolError(f"liveness datagram of {len(data)} bytes exceeds the limit")
    if data[: len(LIVENESS_MAGIC)] != LIVENESS_MAGIC:
        raise ProtocolError("bad liveness magic (not a discoro liveness datagram)")
    if len(data) < len(LIVENESS_MAGIC) + MAC_SIZE + 1:
        raise ProtocolError("liveness datagram too short to be signed")
    view = memoryview(data)
    signed, mac = view[:-MAC_SIZE], data[-MAC_SIZE:]
    if not hmac.compare_digest(mac, _mac(key, signed)):
        raise ForgedLiveness("liveness datagram with a wrong MAC (forged, or another cluster)")
    values = unpack_map(signed[len(LIVENESS_MAGIC) :], "liveness datagram")
    if values.get("version") != PROTOCOL_VERSION:
        raise ProtocolError(f"liveness datagram of protocol version {values.get('version')!r}")
    problem = _problem(values)
    if problem:
        raise ProtocolError(f"malformed liveness datagram: {problem}")
    skew = now - values["time"]
    if not -REPLAY_WINDOW <= skew <= REPLAY_WINDOW:
        raise StaleLiveness(
            f"liveness datagram made {skew:+.1f} s from our clock (window {REPLAY_WINDOW} s)"
        )
    values["coros"] = tuple(values["coros"])
    return LivenessNote(**values)


def datagram_mac(data: bytes) -> bytes:
    return data[-MAC_SIZE:]


class ReplayGuard:
    """Remembers the MACs of datagrams taken within the replay window, so a copy is dropped.
    Bounded: at most ``limit`` entries (the oldest go first)."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._seen: dict[bytes, float] = {}  # MAC -> when it may be forgotten (monotonic)

    def fresh(self, data: bytes, now: float) -> bool:
        """Whether datagram ``data`` was not taken before (and remember it); ``now`` is a
        monotonic time."""
        mac = datagram_mac(data)
        seen = self._seen
        if seen.get(mac, 0.0) > now:
            return False
        while seen:  # oldest first: expiries only grow
            oldest = next(iter(seen))
            if seen[oldest] > now and len(seen) < self.limit:
                break
            del seen[oldest]
        seen[mac] = now + 2 * REPLAY_WINDOW  # the window spans both sides of our clock
        return True
