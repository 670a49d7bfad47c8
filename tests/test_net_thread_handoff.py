"""Fewer crossings between a transport thread and the core (issue 9): reads flushed while the
core has not taken the previous batch join it (one wake-up of the core for all of them, in
order), and a plain message a core coroutine sends goes out with the packed control of the
one-loop short way (`RemoteSends.post_plain`), arriving as it was sent, in order with the
messages that take the general way."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest

from discoro import AsynCoro, Coro
from discoro.net.transport_thread import CoreHop, TransportThread
from netpeers import run, start_peer

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def transport() -> Iterator[TransportThread]:
    thread = TransportThread(name="test-transport")
    yield thread
    thread.stop()


def collect(count: int, coro: Any = None) -> Any:
    got = []
    while len(got) < count:
        got.append((yield coro.receive(timeout=20)))
    return got


def test_reads_flushed_while_the_core_is_busy_join_one_batch_in_order(
    transport: TransportThread,
) -> None:
    kernel = AsynCoro.instance()
    hop = CoreHop(kernel, transport)
    sink = Coro(collect, 300)
    busy, gate, flushed = threading.Event(), threading.Event(), threading.Event()

    def block() -> None:  # the core loop is busy (a job that does not yield, say)
        busy.set()
        gate.wait(20)

    def one_read(start: int) -> None:  # as a link dispatching the frames of one read
        hop.begin_read()
        for number in range(start, start + 100):
            hop.deliver_local(sink, number)
        hop.end_read()  # flushes this read's batch

    kernel.loop.call_soon_threadsafe(block)
    assert busy.wait(20)
    for start in (0, 100, 200):
        transport.call(one_read, start)
    transport.call(flushed.set)
    assert flushed.wait(20)
    gate.set()
    assert sink.value(timeout=20) == list(range(300))
    assert (hop.batches, hop.joined, hop.calls) == (1, 2, 300)


def test_reads_flushed_after_the_core_took_the_last_batch_wake_it_again(
    transport: TransportThread,
) -> None:
    kernel = AsynCoro.instance()
    hop = CoreHop(kernel, transport)
    sink = Coro(collect, 20)
    for number in range(20):
        done = threading.Event()

        def one_read(value: int = number, done: threading.Event = done) -> None:
            hop.begin_read()
            hop.deliver_local(sink, value)
            hop.end_read()
            kernel.loop.call_soon_threadsafe(done.set)  # after the batch's own wake-up

        transport.call(one_read)
        assert done.wait(20)  # the core took it: the next read finds nothing pending
    assert sink.value(timeout=20) == list(range(20))
    assert (hop.batches, hop.joined) == (20, 0)


PROGRAM = """
    from discoro.net.runtime import network_of

    MESSAGES = [b"raw", 7, "text", None, 1.5, True, (1, "tuple"), b"", [b"list"], -3]

    def talker(coro=None):
        client, rounds = yield coro.receive()
        for _ in range(rounds):
            for message in MESSAGES:
                client.send(message)
        client.send("end")
        assert (yield coro.receive()) == "got them"  # so every send left this process
        print("PACKED", len(network_of(kernel)._packed_controls), flush=True)

    assert Coro(talker).register("talker") == 0
"""
MESSAGES = [b"raw", 7, "text", None, 1.5, True, (1, "tuple"), b"", [b"list"], -3]


def test_plain_sends_from_a_core_coroutine_take_the_packed_way_in_order(
    net_kernel: AsynCoro,
) -> None:
    rounds = 50
    with start_peer(net_kernel, PROGRAM, env={"DISCORO_NET_THREAD": "1"}) as child:

        def main(coro: Any = None) -> Any:
            talker = yield Coro.locate("talker", child.location, timeout=10)
            talker.send((coro, rounds))
            got = []
            while (message := (yield coro.receive(timeout=20))) != "end":
                got.append(message)
            talker.send("got them")
            return got

        got = run(main, timeout=40)
        packed = int(child.expect(r"^PACKED (\d+)$", timeout=20)[1])
    assert got == MESSAGES * rounds
    assert [type(message) for message in got] == [type(m) for m in MESSAGES] * rounds
    assert packed == 2  # this coroutine, raw and pickled: made once on the thread, reused
