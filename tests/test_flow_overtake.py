"""Large messages travel in fragments interleaved with other traffic (issue 9), across real
processes: a small message to another coroutine overtakes a large one in flight; to the same
coroutine, order is kept. Not timed: the receiving process records the order of arrival."""

from __future__ import annotations

from typing import Any

import pytest

from discoro import AsynCoro, Coro
from netpeers import run, start_peer

pytestmark = pytest.mark.timeout(90)

PROGRAM = """
    arrivals = []

    def sink(label, coro=None):
        while True:
            message = yield coro.receive()
            arrivals.append((label, len(message)))

    def report(coro=None):
        while True:
            client, count = yield coro.receive()
            while len(arrivals) < count:
                yield coro.sleep(0.01)
            client.send(list(arrivals))
            arrivals.clear()

    assert Coro(sink, "big").register("big") == 0
    assert Coro(sink, "small").register("small") == 0
    assert Coro(report).register("report") == 0
"""
#: Far more than the socket buffers and the transport hold, so most of it is still queued
#: in the link when the small message is sent.
BIG = b"y" * (48 << 20)


def arrivals(child_location: Any, sends: list[tuple[str, bytes]]) -> Any:
    def main(coro: Any = None) -> Any:
        sinks = {}
        for name in ("big", "small", "report"):
            sinks[name] = yield Coro.locate(name, child_location, timeout=5)
        for name, message in sends:  # all in one go: no yield between the sends
            assert sinks[name].send(message) == 0
        sinks["report"].send((coro, len(sends)))
        return (yield coro.receive(timeout=60))

    return run(main, timeout=80)


#: The receiving child on one loop, and with its network on a transport thread (as a server
#: process started by a node), whose links read in turns (`Link.READ_TURN`).
MODES = {"one loop": {"DISCORO_NET_THREAD": "0"}, "transport thread": {"DISCORO_NET_THREAD": "1"}}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_small_message_overtakes_a_large_one_in_flight(net_kernel: AsynCoro, mode: str) -> None:
    with start_peer(net_kernel, PROGRAM, env=MODES[mode]) as child:
        got = arrivals(child.location, [("big", BIG), ("small", b"s" * 100)])
    assert got == [("small", 100), ("big", len(BIG))]


def test_messages_to_one_coroutine_keep_their_order_behind_a_large_one(
    net_kernel: AsynCoro,
) -> None:
    with start_peer(net_kernel, PROGRAM) as child:
        got = arrivals(
            child.location,
            [("big", BIG), ("big", b"b" * 10), ("small", b"s" * 100), ("big", b"b" * 20)],
        )
    assert [item for item in got if item[0] == "big"] == [
        ("big", len(BIG)),
        ("big", 10),
        ("big", 20),
    ]
    assert got[0] == ("small", 100)
