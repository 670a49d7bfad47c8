"""The transport thread's two doors (issue 10, D10; `discoro.net.transport_thread`,
`discoro.net.threaded`): net -> core calls batched onto the core loop in order, core -> net
calls through one ordered queue with one wake-up per burst, async calls and their errors
and cancellation across the two loops; and a real process in thread mode that takes in a
burst of messages while its loop is blocked, in few batches, delivered in order."""

from __future__ import annotations

import ast
import asyncio
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from discoro import AsynCoro, Coro, Location
from discoro.net import held as held_module
from discoro.net.threaded import ThreadedNetwork
from discoro.net.transport_thread import CoreHop, TransportThread
from netpeers import run
from procs import PeerProcess

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(60)

NET = Path(__file__).resolve().parents[1] / "src" / "discoro" / "net"
#: ``kernel.X`` in net/ that name the real kernel (rci.py's own ``AsynCoro.instance()``)
REAL_KERNEL_ONLY = {"network", "network_started"}


def kernel_calls_of_the_net_layer() -> set[str]:
    """Every ``<something>.kernel.X`` / ``kernel.X`` attribute the net layer uses."""
    names: set[str] = set()
    for path in NET.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            base = node.value
            if (isinstance(base, ast.Name) and base.id == "kernel") or (
                isinstance(base, ast.Attribute) and base.attr == "kernel"
            ):
                names.add(node.attr)
    return names - REAL_KERNEL_ONLY


def test_the_core_hop_stands_in_for_every_kernel_call_of_the_net_layer() -> None:
    used = kernel_calls_of_the_net_layer()
    assert {"deliver_local", "local_coro", "call", "loop"} <= used  # the scan finds them
    instance_attributes = ("loop", "spin")
    missing = sorted(
        name for name in used if not hasattr(CoreHop, name) and name not in instance_attributes
    )
    assert not missing, f"CoreHop lacks {missing}: the net layer calls them on its kernel"


@pytest.fixture
def transport() -> Iterator[TransportThread]:
    thread = TransportThread(name="test-transport")
    yield thread
    thread.stop()
    assert not thread.thread.is_alive()


def collect(count: int, coro: Any = None) -> Any:
    got = []
    while len(got) < count:
        msg = yield coro.receive(timeout=20)
        if msg is None:
            break
        got.append(msg)
    return got


def test_door_calls_reach_the_core_in_order_one_batch_per_loop_turn(
    transport: TransportThread,
) -> None:
    kernel = AsynCoro.instance()
    hop = CoreHop(kernel, transport)
    sink = Coro(collect, 300)

    def one_read(start: int) -> None:  # as a link dispatching the frames of one read
        for number in range(start, start + 100):
            hop.deliver_local(sink, number)

    transport.call(one_read, 0)
    transport.call(one_read, 100)
    transport.call(one_read, 200)
    assert sink.value(timeout=20) == list(range(300))
    assert hop.calls == 300
    assert 1 <= hop.batches <= 3, hop.batches  # not one wake-up of the core per message


def test_door_calls_from_another_thread_keep_their_order(transport: TransportThread) -> None:
    kernel = AsynCoro.instance()
    hop = CoreHop(kernel, transport)
    sink = Coro(collect, 50)
    for number in range(50):  # not the transport thread: each hops there first
        hop.deliver_local(sink, number)
    assert sink.value(timeout=20) == list(range(50))


def test_a_failing_door_call_is_logged_and_the_batch_goes_on(
    transport: TransportThread, caplog: pytest.LogCaptureFixture
) -> None:
    kernel = AsynCoro.instance()
    hop = CoreHop(kernel, transport)
    sink = Coro(collect, 2)

    def broken() -> None:
        raise RuntimeError("broken on purpose")

    def one_read() -> None:
        hop.deliver_local(sink, "before")
        hop.run_local(broken)
        hop.deliver_local(sink, "after")

    transport.call(one_read)
    assert sink.value(timeout=20) == ["before", "after"]
    assert "broken on purpose" in caplog.text


@pytest.fixture
def threaded(cluster_secret: str) -> Iterator[ThreadedNetwork]:
    kernel = AsynCoro.instance()
    network = ThreadedNetwork(kernel, {"node": "127.0.0.1", "secret": cluster_secret})
    yield network  # never started: no socket; only its thread and queue are used
    network.transport.stop()


def test_calls_into_the_network_keep_their_order_with_one_wakeup_per_burst(
    threaded: ThreadedNetwork,
) -> None:
    seen: list[int] = []
    gate = threading.Event()
    threaded.transport.call(gate.wait, 10)  # the network's loop is busy for a moment
    for number in range(200):
        threaded.call_soon(seen.append, number)
    gate.set()
    assert threaded.call_wait(len, seen) == 200
    assert seen == list(range(200))
    assert threaded.wakeups <= 2, threaded.wakeups  # the burst, then call_wait's own


def test_held_sends_wake_the_network_loop_once_while_it_watches(
    threaded: ThreadedNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server holds one start report per job (`discoro.net.held`): while the network's
    loop sweeps the held sends, holding one more costs no hand-over (issue 9)."""
    monkeypatch.setattr(held_module, "HOLD_MAX", 60.0)  # no sweep ends the watch here
    items = [threaded.send_held(None, 0)]  # type: ignore[arg-type]
    threaded.call_wait(int)  # the network's loop ran its queue dry: it watches now
    before = threaded.wakeups
    items += [threaded.send_held(None, number) for number in range(1, 20)]  # type: ignore[arg-type]
    assert threaded.wakeups == before  # nothing handed over, nobody woken
    assert not threaded._queue
    assert all(threaded.take_held(item) for item in items)  # none went out


def test_async_calls_run_on_the_network_loop_with_results_errors_and_cancellation(
    threaded: ThreadedNetwork,
) -> None:
    network_thread = threaded.transport.thread
    started = threading.Event()
    cancelled = threading.Event()

    async def where() -> str:
        return threading.current_thread().name

    async def fails() -> None:
        raise LookupError("nothing there")

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def body(coro: Any = None) -> Any:
        name = await threaded.run(where())
        try:
            await threaded.run(fails())
        except LookupError as exc:
            return name, str(exc)
        return name, None

    assert Coro(body).value(timeout=20) == (network_thread.name, "nothing there")

    async def waits(coro: Any = None) -> None:
        await threaded.run(forever())

    waiter = Coro(waits)
    assert started.wait(10)
    waiter.terminate()  # the caller gives up: the work on the other loop is cancelled too
    assert cancelled.wait(10)


PEER = """
import os
import sys
import time

os.environ["DISCORO_NET_THREAD"] = "1"
import discoro
from discoro import Coro
from discoro.net.runtime import network_of, network_thread

kernel = discoro.AsynCoro(node="127.0.0.1", udp_port=int(sys.argv[1]), secret=sys.argv[2])
assert network_thread(kernel) is not None


def sink(coro=None):
    got = []
    while True:
        msg = yield coro.receive()
        if msg == "report":
            hop = network_of(kernel).kernel
            print("GOT", got == list(range(len(got))), len(got), hop.batches, hop.calls, flush=True)
            continue
        if msg == "block":
            print("BLOCKING", flush=True)
            time.sleep(float(sys.argv[3]))  # the loop is stuck: nothing here runs
            print("UNBLOCKED", flush=True)
            continue
        got.append(msg)


assert Coro(sink).register("sink") == 0
print("READY", kernel.location.port, flush=True)
sys.stdin.readline()
"""

BLOCK = 6.0
BURST = 2000


def test_a_process_in_thread_mode_takes_in_a_burst_while_its_loop_is_blocked(
    net_kernel: AsynCoro, cluster_secret: str, udp_port: int
) -> None:
    with PeerProcess(PEER, str(udp_port), cluster_secret, str(BLOCK)) as peer:
        port = int(peer.expect(r"^READY (\d+)$", timeout=20)[1])
        location = Location("127.0.0.1", port)

        def main(coro: Any = None) -> Any:
            sink = yield Coro.locate("sink", location, timeout=10)
            assert (yield sink.deliver("block", timeout=10)) == 1
            return sink

        sink = run(main, timeout=30)
        peer.expect(r"^BLOCKING$", timeout=20)
        started = time.monotonic()

        def burst(coro: Any = None) -> Any:
            for number in range(BURST):
                sink.send(number)
            last = yield sink.deliver(BURST, timeout=BLOCK)  # acknowledged while blocked
            return last, "UNBLOCKED" in peer.output

        last, unblocked = run(burst, timeout=30)
        assert (last, unblocked) == (1, False), (time.monotonic() - started, peer.output)
        peer.expect(r"^UNBLOCKED$", timeout=30)
        sink.send("report")
        got = peer.expect(r"^GOT (\S+) (\d+) (\d+) (\d+)$", timeout=20)
        assert got[1] == "True" and int(got[2]) == BURST + 1, peer.output
        assert int(got[3]) < BURST / 10, peer.output  # batched: not one wake-up per message
        assert int(got[4]) < BURST / 10, peer.output  # in runs: not one core call per message


SLOW_PEER = """
import os
import sys
import threading
import time

os.environ["DISCORO_NET_THREAD"] = "1"
import discoro
from discoro import Coro
from discoro.net import transport_thread
from discoro.net.runtime import network_of

transport_thread.INTAKE_HIGH, transport_thread.INTAKE_LOW = 1 << 20, 256 << 10
kernel = discoro.AsynCoro(node="127.0.0.1", udp_port=int(sys.argv[1]), secret=sys.argv[2])
hop = network_of(kernel).kernel


def watch():  # a thread: the loop is blocked while it matters
    while not hop.paused:
        time.sleep(0.01)
    print("PAUSED", hop.taken - hop.handed, flush=True)


def sink(coro=None):
    expected = 0
    while True:
        msg = yield coro.receive()
        if msg == "block":
            threading.Thread(target=watch, daemon=True).start()
            time.sleep(float(sys.argv[3]))
            print("UNBLOCKED", flush=True)
            continue
        number, blob = msg
        if number != expected or len(blob) != 100_000:
            print("BAD", number, expected, flush=True)
        expected += 1
        if expected == int(sys.argv[4]):
            print("ALL", expected, flush=True)
            threading.Thread(target=watch_resume, daemon=True).start()


def watch_resume():  # the last batch's weight is counted after its messages ran: wait
    deadline = time.monotonic() + 20
    while hop.paused and time.monotonic() < deadline:
        time.sleep(0.01)
    print("READING", hop.paused, hop.pauses, flush=True)


assert Coro(sink).register("sink") == 0
print("READY", kernel.location.port, flush=True)
sys.stdin.readline()
"""


def test_a_blocked_process_in_thread_mode_stops_reading_past_its_intake_bound(
    net_kernel: AsynCoro,
    cluster_secret: str,
    udp_port: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from discoro.net import flow

    monkeypatch.setattr(flow, "SEND_HIGH", 2 << 20)  # read when the link connects
    monkeypatch.setattr(flow, "SEND_LOW", 1 << 20)
    count, blob = 200, b"x" * 100_000
    # blocked longer than the peers' dead time (5 s): this side must keep pinging meanwhile
    with PeerProcess(SLOW_PEER, str(udp_port), cluster_secret, "7", str(count)) as peer:
        port = int(peer.expect(r"^READY (\d+)$", timeout=20)[1])

        def main(coro: Any = None) -> Any:
            sink = yield Coro.locate("sink", Location("127.0.0.1", port), timeout=10)
            assert (yield sink.deliver("block", timeout=10)) == 1
            held = 0
            for number in range(count):
                sink.send((number, blob))
                if number % 10 == 9:
                    held += coro._hold is not None
                    yield coro.sleep(0)
            return held

        held = run(main, timeout=60)
        waiting = int(peer.expect(r"^PAUSED (\d+)$", timeout=20)[1])
        peer.expect(r"^UNBLOCKED$", timeout=30)
        peer.expect(r"^ALL 200$", timeout=30)  # every message, in order
        pauses = int(peer.expect(r"^READING \[\] (\d+)$", timeout=30)[1])  # reading again
        assert not [line for line in peer.output if "silent" in line], peer.output
        said = [line for line in peer.output if "links stop reading" in line]
        # once per INTAKE_LOG_EVERY (10 s) however often the bound is reached (run: < 20 s)
        assert 1 <= len(said) <= min(2, pauses), (pauses, peer.output)
        assert not [line for line in peer.output if line.startswith("BAD")], peer.output
    assert held > 0, "the peer stopped reading: this sender must have been held"
    lost = [r.message for r in caplog.records if "silent" in r.message or "drop" in r.message]
    assert not lost, lost  # the sender kept its link: the paused side pinged it
    assert waiting < 4 << 20, waiting  # bounded: the intake bound plus a read or so
