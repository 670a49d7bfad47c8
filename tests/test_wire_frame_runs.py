"""Runs of received frames (`FrameDecoder.drain`'s ``handle_run``, `KnownControls.run`):
frames whose control bytes repeat go up as one call per run, and what comes up, expanded,
is what frame-by-frame decoding gives: the same messages, once each, in order; the same
error after the same messages for a bad frame; frames behind a run whose handler raised
stay buffered."""

from __future__ import annotations

from functools import partial
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discoro.errors import ProtocolError
from discoro.wire.frames import FrameDecoder, FrameEncoder
from discoro.wire.messages import KnownControls, Message, decode_message

# a small pool, so that runs form: requestless scalar controls (remembered), a request, a
# control with a list field (never remembered), and a frame without a payload
CONTROLS = [
    {"op": "send", "f": {"c": 1, "b": 1}},
    {"op": "send", "f": {"c": 2}},
    {"op": "channel_send", "f": {"n": "ch"}},
    {"op": "deliver", "rid": 7, "f": {"c": 1}},
    {"op": "send", "f": {"c": 3, "o": [1, 2]}},
    {"op": "ping"},
]

_frames = st.lists(
    st.tuples(st.integers(0, len(CONTROLS) - 1), st.integers(0, 6000)),
    max_size=60,
)


def _encode(frames: list[tuple[int, int]]) -> bytes:
    encoder = FrameEncoder()
    out = bytearray()
    for index, (which, size) in enumerate(frames):
        control = CONTROLS[which]
        payload = None if control["op"] == "ping" else (index.to_bytes(4, "big") * size)[:size]
        out += encoder.encode(control, payload)
    return bytes(out)


def _as_tuple(message: Message) -> tuple[object, ...]:
    return (message.op, message.rid, message.fields, message.payload)


def _one_by_one(data: bytes, cuts: list[int]) -> list[tuple[object, ...]]:
    decoder, known, got = FrameDecoder(), KnownControls(), []
    handle = got.append
    for piece in _pieces(data, cuts):
        decoder.feed(piece)
        decoder.drain(handle, decode_message, known)
    return [_as_tuple(m) for m in got]


def _in_runs(data: bytes, cuts: list[int]) -> tuple[list[tuple[object, ...]], list[int]]:
    decoder, known, got, runs = FrameDecoder(), KnownControls(), [], []

    def handle_run(message: Message, payloads: list[bytes]) -> None:
        assert message.payload is None and payloads
        runs.append(len(payloads))
        for payload in payloads:
            got.append((message.op, message.rid, dict(message.fields), payload))

    def handle(message: Message) -> None:
        got.append(_as_tuple(message))

    for piece in _pieces(data, cuts):
        decoder.feed(piece)
        decoder.drain(handle, decode_message, known, partial(known.run, handle, handle_run))
    return got, runs


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in pairwise(points)]


@settings(max_examples=150, deadline=None)
@given(_frames, st.lists(st.integers(0, 1 << 20), max_size=8))
def test_runs_give_what_frame_by_frame_gives(frames: list[tuple[int, int]], cuts: list[int]):
    data = _encode(frames)
    got, _ = _in_runs(data, cuts)
    assert got == _one_by_one(data, cuts)
    assert len(got) == len(frames)


def test_a_stream_of_sends_to_one_coroutine_goes_up_as_one_run():
    frames = [(0, 100)] * 500
    got, runs = _in_runs(_encode(frames), [])
    assert runs == [499]  # the first frame alone (it makes the control known), then one run
    assert [g[3] for g in got] == [(i.to_bytes(4, "big") * 100)[:100] for i in range(500)]


def test_requests_and_unremembered_controls_never_make_runs():
    frames = [(3, 10)] * 20 + [(4, 10)] * 20
    got, runs = _in_runs(_encode(frames), [])
    assert runs == [] and len(got) == 40
    assert [g[1] for g in got[:20]] == [7] * 20


def test_a_bad_frame_after_a_run_comes_after_the_run():
    data = _encode([(0, 50)] * 10) + b"XX" + bytes(20)
    decoder, known, got = FrameDecoder(), KnownControls(), []

    def handle_run(message: Message, payloads: list[bytes]) -> None:
        got.extend(payloads)

    decoder.feed(data)
    with pytest.raises(ProtocolError, match="magic"):
        decoder.drain(got.append, decode_message, known, partial(known.run, got.append, handle_run))
    assert len(got) == 10


def test_frames_behind_a_run_whose_handler_raised_stay_buffered():
    data = _encode([(0, 50)] * 5 + [(1, 50)] * 3)
    decoder, known = FrameDecoder(), KnownControls()
    got: list[object] = []
    failing = [True]

    def handle_run(message: Message, payloads: list[bytes]) -> None:
        if failing[0]:
            failing[0] = False
            raise RuntimeError("handler bug")
        got.extend((message.fields["c"], p[:4]) for p in payloads)

    def handle(message: Message) -> None:
        got.append((message.fields["c"], message.payload[:4]))  # type: ignore[index]

    run = partial(known.run, handle, handle_run)
    decoder.feed(data)
    with pytest.raises(RuntimeError):
        decoder.drain(handle, decode_message, known, run)
    assert got == [(1, bytes([0, 0, 0, 0]))]  # the first frame; its run (4) was taken
    decoder.drain(handle, decode_message, known, run)
    assert got[1:] == [(2, (i).to_bytes(4, "big")) for i in range(5, 8)]
