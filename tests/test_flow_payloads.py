"""Payloads (issue 9): bytes-like messages travel raw and arrive as bytes; other objects use
pickle 5 with large buffers out of band; a small control message overtakes a large one."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from discoro import AsynCoro, Coro
from discoro.cluster.protocol import Pulse
from discoro.net import payloads
from netpeers import run, start_peer

pytestmark = pytest.mark.timeout(60)


def roundtrip(message: object) -> tuple[object, dict[str, object], bytes, tuple[Any, ...]]:
    fields: dict[str, object] = {}
    payload, more = payloads.encode(message, fields)
    joined = b"".join((payload, *more))  # the receiver gets the parts as one payload
    return payloads.decode(fields, bytearray(joined)), fields, payload, more


@pytest.mark.parametrize(
    "message", [b"", b"abc", bytearray(b"abc"), memoryview(b"abcdef")[1:4], b"\x00" * 100_000]
)
def test_bytes_like_travel_raw_and_arrive_as_bytes(message: Any) -> None:
    value, fields, payload, more = roundtrip(message)
    assert fields == {payloads.RAW: 1} and more == ()
    assert type(value) is bytes and value == bytes(message)
    if type(message) is bytes:
        assert payload is message  # queued as it is: no copy, no pickle


def test_a_mutable_message_is_a_snapshot_taken_at_send() -> None:
    data = bytearray(b"before")
    fields: dict[str, object] = {}
    payload, _ = payloads.encode(data, fields)
    data[:] = b"after!"
    assert payloads.decode(fields, payload) == b"before"


def test_large_buffers_go_out_of_band_and_small_ones_in_band() -> None:
    array = np.arange(1 << 17, dtype=np.float64)  # 1 MiB
    value, fields, payload, more = roundtrip({"a": array, "small": np.arange(4)})
    assert fields[payloads.OUT_OF_BAND] == [array.nbytes]
    assert len(payload) < 4096  # the pickle stream holds no copy of the array
    assert isinstance(value, dict)
    assert np.array_equal(value["a"], array) and np.array_equal(value["small"], np.arange(4))
    array[0] = -1  # a writable buffer was snapshotted at send
    assert value["a"][0] == 0

    frozen = np.arange(1 << 17, dtype=np.int64)
    frozen.flags.writeable = False
    _, _, _, parts = roundtrip(frozen)
    assert isinstance(parts[0], memoryview)  # read-only: referenced, never copied

    plain, fields, _, more = roundtrip({"n": 1, "s": "x" * 100})
    assert plain == {"n": 1, "s": "x" * 100} and fields == {} and more == ()


@pytest.mark.parametrize(
    "fields",
    [{payloads.OUT_OF_BAND: [10**9]}, {payloads.OUT_OF_BAND: [-1]}, {payloads.OUT_OF_BAND: "x"}],
)
def test_a_bad_out_of_band_description_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="out-of-band sizes"):
        payloads.decode(fields, pickle.dumps(1))


PROGRAM = """
    def collect(coro=None):
        while True:
            client, count = yield coro.receive()
            got = []
            for _ in range(count):
                message = yield coro.receive()
                got.append((type(message).__name__, message))
            client.send(got)

    def order(coro=None):
        while True:
            client = yield coro.receive()
            first = yield coro.receive()
            second = yield coro.receive()
            client.send([type(first).__name__, type(second).__name__, len(second)])

    assert Coro(collect).register("collect") == 0
    assert Coro(order).register("order") == 0
"""


def test_messages_arrive_equal_across_processes(net_kernel: AsynCoro) -> None:
    array = np.random.default_rng(1).random((512, 512))  # 2 MiB: out of band
    messages: list[Any] = [
        b"raw bytes",
        bytearray(b"\x00\xff" * 50_000),
        memoryview(b"0123456789")[2:8],
        b"x" * (3 << 20),
        {"array": array, "label": "float64"},
        ("tuple", 1, 2.5, None),
    ]
    with start_peer(net_kernel, PROGRAM) as child:

        def main(coro: Any = None) -> Any:
            collect = yield Coro.locate("collect", child.location, timeout=5)
            assert (yield collect.deliver((coro, len(messages)), timeout=5)) == 1
            for message in messages:
                assert collect.send(message) == 0
            return (yield coro.receive(timeout=20))

        answers = run(main, timeout=40)
    for message, (kind, echoed) in zip(messages, answers, strict=True):
        if isinstance(message, bytes | bytearray | memoryview):
            assert kind == "bytes" and echoed == bytes(message)
        else:
            assert kind == type(message).__name__
    assert np.array_equal(answers[4][1]["array"], array)
    assert answers[5][1] == messages[5]


def test_a_small_control_message_overtakes_a_large_one(net_kernel: AsynCoro) -> None:
    big = b"y" * (60 << 20)  # far more than the socket buffers and the transport hold
    with start_peer(net_kernel, PROGRAM) as child:

        def main(coro: Any = None) -> Any:
            order = yield Coro.locate("order", child.location, timeout=5)
            assert (yield order.deliver(coro, timeout=5)) == 1
            order.send(big)
            order.send(Pulse("small"))  # a pulse travels on the control lane
            return (yield coro.receive(timeout=30))

        assert run(main, timeout=40) == ["Pulse", "bytes", len(big)]
