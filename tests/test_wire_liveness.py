"""Liveness datagrams (`discoro.wire.liveness`): signed, timestamped, bounded, never pickle."""

from __future__ import annotations

import hmac

import pytest

from discoro.errors import ProtocolError
from discoro.wire.discovery import REPLAY_WINDOW
from discoro.wire.liveness import (
    LIVENESS_MAGIC,
    MAX_CORO_IDS,
    ForgedLiveness,
    LivenessNote,
    ReplayGuard,
    StaleLiveness,
    decode_liveness,
    encode_liveness,
    liveness_key,
)
from discoro.wire.safepack import pack

KEY = liveness_key(b"m" * 32)
NOW = 1_700_000_000.0


def note(**changes: object) -> LivenessNote:
    values: dict[str, object] = {
        "kind": "alive",
        "time": NOW,
        "sid": "0123456789abcdef",
        "addr": "10.0.0.1",
        "port": 40000,
        "pid": 4242,
        "stuck": 12.5,
        "cmd_port": 40001,
        "coros": (),
    }
    values.update(changes)
    return LivenessNote(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "made",
    [note(), note(kind="terminate", coros=(7,)), note(kind="ending", coros=(1, 2), cmd_port=0)],
)
def test_round_trip(made: LivenessNote) -> None:
    assert decode_liveness(encode_liveness(made, KEY), KEY, NOW + 1) == made


def test_another_key_or_an_edited_byte_is_forged() -> None:
    data = encode_liveness(note(), KEY)
    with pytest.raises(ForgedLiveness):
        decode_liveness(data, liveness_key(b"x" * 32), NOW)
    edited = bytearray(data)
    edited[10] ^= 1
    with pytest.raises(ForgedLiveness):
        decode_liveness(bytes(edited), KEY, NOW)


@pytest.mark.parametrize("skew", [REPLAY_WINDOW + 1, -REPLAY_WINDOW - 1])
def test_outside_the_replay_window_is_stale(skew: float) -> None:
    data = encode_liveness(note(), KEY)
    with pytest.raises(StaleLiveness):
        decode_liveness(data, KEY, NOW + skew)


def _signed(values: dict[str, object]) -> bytes:
    signed = LIVENESS_MAGIC + pack(values)
    return signed + hmac.digest(KEY, signed, "sha256")


def _good_values() -> dict[str, object]:
    made = note()
    return {
        "version": made.version,
        "kind": "alive",
        "time": NOW,
        "sid": made.sid,
        "addr": made.addr,
        "port": made.port,
        "pid": made.pid,
        "stuck": 1.0,
        "cmd_port": 0,
        "coros": [],
    }


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "shutdown"},
        {"port": 0},
        {"pid": -1},
        {"stuck": -1.0},
        {"stuck": float("nan")},
        {"time": 1},
        {"coros": list(range(MAX_CORO_IDS + 1))},
        {"coros": [-1]},
        {"sid": ""},
        {"extra": 1},
        {"version": 999},
    ],
)
def test_signed_but_malformed_is_refused(change: dict[str, object]) -> None:
    values = {**_good_values(), **change}
    with pytest.raises(ProtocolError):
        decode_liveness(_signed(values), KEY, NOW)
    assert decode_liveness(_signed(_good_values()), KEY, NOW).kind == "alive"


@pytest.mark.parametrize(
    "data", [b"", b"DLIV", b"XXXX" + b"\0" * 40, b"DLIV" + b"\xc1" * 40, b"DLIV" * 300]
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_liveness(data, KEY, NOW)


def test_bad_values_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="kind"):
        note(kind="nonsense")
    with pytest.raises(ValueError, match="coros"):
        note(coros=tuple(range(MAX_CORO_IDS + 1)))


def test_replay_guard_takes_each_datagram_once() -> None:
    guard = ReplayGuard(limit=3)
    first, second = encode_liveness(note(), KEY), encode_liveness(note(time=NOW + 1), KEY)
    assert guard.fresh(first, 0.0) and guard.fresh(second, 0.0)
    assert not guard.fresh(first, 1.0) and not guard.fresh(second, 1.0)
    assert guard.fresh(first, 2 * REPLAY_WINDOW + 1)  # forgotten: the time check refuses it
    for index in range(5):  # bounded
        guard.fresh(encode_liveness(note(time=NOW + 10 + index), KEY), 3 * REPLAY_WINDOW)
    assert len(guard._seen) <= 3
