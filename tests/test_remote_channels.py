"""Channels across processes (reference 1.7, 2.7, 2.8): a child peer process and this one.

Each test starts its own child (see `netpeers.start_peer`); the child prints what the test
waits for, and the test's coroutines wait for messages, never for fixed sleeps.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from typing import Any

import pytest

from discoro import AsynCoro, Channel, Coro, PeerStatus
from netpeers import run, start_peer
from procs import PeerProcess

pytestmark = pytest.mark.timeout(30)

_names = itertools.count()


def fresh(prefix: str = "rchan") -> str:
    return f"{prefix}-{next(_names)}"


def forward(tag: str, main: Coro, coro: Any = None) -> Any:
    """Send every message this coroutine receives to ``main`` as ``(tag, message)``."""
    while True:
        message = yield coro.receive()
        main.send((tag, message))


def to_queue(inbox: queue.Queue[Any], coro: Any = None) -> Any:
    """Put every message this coroutine receives into ``inbox`` (read by the test thread)."""
    while True:
        inbox.put((yield coro.receive()))


def test_subscribe_send_unsubscribe_keeps_order(net_kernel: AsynCoro) -> None:
    program = """
        news = Channel("news")
        news.register()
    """
    with start_peer(net_kernel, program) as child:

        def subscribe(coro: Any = None) -> Any:
            channel = yield Channel.locate("news", child.location, timeout=5)
            assert channel is not None and channel._remote
            assert channel.name == "news" and channel.location == child.location
            assert str(channel) == f"news@{child.location}"
            assert (yield channel.subscribe(coro)) == 0
            assert (yield channel.subscribe(coro)) == 0  # once is enough: still one copy
            for i in range(1000):
                assert channel.send(i) == 0
            channel.send("end")
            got = []
            while (message := (yield coro.receive(timeout=10))) != "end":
                got.append(message)
            assert got == list(range(1000))

            assert (yield channel.unsubscribe(coro)) == 0
            assert (yield channel.unsubscribe(coro)) == -1
            other = Coro(forward, "other", coro)
            assert (yield channel.subscribe(other)) == 0
            channel.send("after")
            assert (yield coro.receive(timeout=5)) == ("other", "after")
            assert (yield coro.receive(timeout=0)) is None  # main was not sent "after"
            assert (yield channel.unsubscribe(other)) == 0
            other.terminate()
            return channel

        channel = run(subscribe)

        # send from a thread that is not the kernel's: pickled here, in order there
        def collect(count: int, ready: threading.Event, coro: Any = None) -> Any:
            assert (yield channel.subscribe(coro)) == 0
            ready.set()
            got = []
            for _ in range(count):
                got.append((yield coro.receive(timeout=10)))
            return got

        ready = threading.Event()
        collector = Coro(collect, 500, ready)
        assert ready.wait(5)
        for i in range(500):
            assert channel.send(("thread", i)) == 0
        assert collector.value(timeout=10) == [("thread", i) for i in range(500)]


def test_remote_deliver_waits_for_n_times_out_and_sees_the_channel_gone(
    net_kernel: AsynCoro,
) -> None:
    program = """
        room = Channel("room")
        room.register()

        def member(coro=None):
            yield room.subscribe(coro)
            while True:
                message = yield coro.receive()
                print("MEMBER GOT", message, flush=True)
                if message == "close":
                    room.close()
                    print("CLOSED", flush=True)

        Coro(member)
    """
    with start_peer(net_kernel, program) as child:

        def deliverer(channel: Channel, main: Coro, coro: Any = None) -> Any:
            count = yield channel.deliver("y", timeout=10, n=3)
            main.send(("delivered", count))

        def main(coro: Any = None) -> Any:
            room = yield Channel.locate("room", child.location, timeout=5)
            assert (yield room.deliver("hello", timeout=5, n=1)) == 1  # the member is there
            started = time.monotonic()
            assert (yield room.deliver("x", timeout=0.3, n=2)) == 0
            assert time.monotonic() - started >= 0.25

            Coro(deliverer, room, coro)  # waits for a third subscriber
            helper = Coro(forward, "helper", coro)
            assert (yield room.subscribe(helper)) == 0
            assert (yield room.subscribe(coro)) == 0
            got = set()
            for _ in range(3):
                got.add((yield coro.receive(timeout=10)))
            assert got == {"y", ("helper", "y"), ("delivered", 3)}
            helper.terminate()
            return room

        room = run(main)
        child.expect("MEMBER GOT hello")
        child.expect("MEMBER GOT y")

        assert room.send("close") == 0
        child.expect("CLOSED")

        def after_close(coro: Any = None) -> Any:
            assert (yield room.deliver("late", timeout=2)) == -1
            assert (yield room.subscribe(coro)) == -1
            assert (yield room.unsubscribe(coro)) == -1
            assert (yield Channel.locate("room", child.location, timeout=2)) is None
            assert room.send("late") == 0  # fire and forget: the peer is known

        run(after_close)


def test_nested_channels_across_processes_count_end_recipients(net_kernel: AsynCoro) -> None:
    program = """
        mid = Channel("mid")
        mid.register()

        def leaf(tag, coro=None):
            yield mid.subscribe(coro)
            while True:
                message = yield coro.receive()
                print("LEAF", tag, message, flush=True)

        for tag in "ab":
            Coro(leaf, tag)
    """
    with start_peer(net_kernel, program) as child:

        def main(coro: Any = None) -> Any:
            mid = yield Channel.locate("mid", child.location, timeout=5)
            assert (yield mid.deliver("warmup", timeout=5, n=2)) == 2

            top = Channel(fresh("top"))  # here: p1 and the child's mid
            assert (yield top.subscribe(Coro(forward, "p1", coro))) == 0
            assert (yield top.subscribe(mid)) == 0

            bottom = Channel(fresh("bottom"))  # here, under the child's mid: q1 and q2
            for tag in ("q1", "q2"):
                assert (yield bottom.subscribe(Coro(forward, tag, coro))) == 0
            assert (yield mid.subscribe(bottom)) == 0

            # top -> p1, mid -> (a, b, bottom -> (q1, q2))
            assert (yield top.deliver("m1", timeout=5)) == 5
            # mid (remote) -> (a, b, bottom -> (q1, q2))
            assert (yield mid.deliver("m2", timeout=5)) == 4
            assert top.send("m3") == 0
            got = []
            for _ in range(3 + 2 + 3):
                got.append((yield coro.receive(timeout=10)))
            expected = [
                *[("p1", "m1"), ("q1", "m1"), ("q2", "m1")],
                *[("q1", "m2"), ("q2", "m2")],
                *[("p1", "m3"), ("q1", "m3"), ("q2", "m3")],
            ]
            assert sorted(got) == sorted(expected)

            assert (yield mid.unsubscribe(bottom)) == 0
            assert (yield mid.deliver("m4", timeout=5)) == 2
            assert (yield top.deliver("m5", timeout=5)) == 3
            top.close()
            bottom.close()

        run(main)
        for message in ("m1", "m2", "m3", "m4", "m5"):
            child.expect(f"LEAF a {message}")
        child.expect("LEAF b m5")


def test_ended_and_killed_remote_subscribers_are_dropped(net_kernel: AsynCoro) -> None:
    alerts = Channel("alerts")
    assert alerts.register() == 0
    program = """
        def listener(count, coro=None):
            alerts = yield Channel.locate("alerts")  # found once the test dials us
            assert (yield alerts.subscribe(coro)) == 0
            print("SUBSCRIBED", count, flush=True)
            for _ in range(count):
                print("HEARD", (yield coro.receive()), flush=True)

        def watch(observed, coro=None):
            yield coro.monitor(observed)
            yield coro.receive()
            print("ENDED", flush=True)

        Coro(watch, Coro(listener, 1))
        Coro(listener, 10**9)
    """

    def status_watch(location: Any, main: Coro, coro: Any = None) -> Any:
        kernel = AsynCoro.instance()
        kernel.peer_status(coro)
        main.send("watching")
        try:
            while True:
                status = yield coro.receive()
                if status.location == location and status.status == PeerStatus.Offline:
                    main.send("offline")
                    return
        finally:
            kernel.unsubscribe_peer_status(coro)

    inbox: queue.Queue[Any] = queue.Queue()
    listener = Coro(to_queue, inbox)
    try:
        with start_peer(net_kernel, program) as child:
            child.expect("SUBSCRIBED")
            child.expect("SUBSCRIBED")

            def deliver(message: str, coro: Any = None) -> Any:
                return (yield alerts.deliver(message, timeout=5))

            assert run(lambda coro=None: (yield alerts.subscribe(listener))) == 0
            assert run(deliver, "one") == 3
            assert inbox.get(timeout=5) == "one"
            # two coroutines in the child: their lines may interleave either way
            child.proc.expect_all("HEARD one", "HEARD one", "ENDED")

            # the ended listener answers -1 to deliver, so the channel drops it
            assert run(deliver, "two") == 2
            assert inbox.get(timeout=5) == "two"
            child.expect("HEARD two")
            assert len(alerts._subscribers) == 2

            def kill(coro: Any = None) -> Any:
                Coro(status_watch, child.location, coro)
                yield coro.receive(timeout=5)  # the watcher has subscribed
                child.proc.kill()
                assert (yield coro.receive(timeout=10)) == "offline"

            run(kill)
            assert list(alerts._subscribers) == [listener]  # the killed one is dropped
            assert alerts.send("three") == 0
            assert inbox.get(timeout=5) == "three"
            assert run(deliver, "four") == 1
            assert inbox.get(timeout=5) == "four"
    finally:
        alerts.close()
        listener.terminate()


def test_locate_with_and_without_location_and_timeout(net_kernel: AsynCoro) -> None:
    program = """
        Channel("shown").register()
        hidden = Channel("hidden")  # exists, but not registered: not locatable
        temp = Channel("temp")
        temp.register()
        temp.unregister()
    """
    with start_peer(net_kernel, program) as child:

        def main(coro: Any = None) -> Any:
            anywhere = yield Channel.locate("shown", timeout=5)
            assert anywhere is not None and anywhere.location == child.location
            there = yield Channel.locate("shown", child.location, timeout=5)
            assert there == anywhere
            for name in ("hidden", "temp", "nothing"):
                assert (yield Channel.locate(name, child.location, timeout=5)) is None
            started = time.monotonic()
            assert (yield Channel.locate("nothing", timeout=0.3)) is None
            assert time.monotonic() - started >= 0.25

            mine = Channel(fresh("mine"))
            assert mine.register() == 0
            assert (yield Channel.locate(mine.name)) is mine
            assert (yield Channel.locate(mine.name, AsynCoro.instance().location)) is mine
            assert mine.unregister() == 0
            assert (yield Channel.locate(mine.name, AsynCoro.instance().location)) is None
            mine.close()

        run(main)


def test_registering_starts_networking() -> None:
    program = """
        from discoro import AsynCoro, Channel
        from discoro.net.rci import RCI

        def ping(coro=None):
            yield coro.sleep(0)

        for what in ("channel", "rci"):
            kernel = AsynCoro.instance()  # no options: a local kernel, no sockets yet
            kernel.options.update(node="127.0.0.1", discover=False)
            assert not kernel.network_started
            if what == "channel":
                assert Channel("news").register() == 0
            else:
                assert RCI(ping).register() == 0
            print(what.upper(), kernel.network_started, kernel.location, flush=True)
            kernel.terminate()
    """
    with PeerProcess(program) as child:
        child.expect(r"^CHANNEL True 127\.0\.0\.1:\d+$")
        child.expect(r"^RCI True 127\.0\.0\.1:\d+$")
        assert child.wait() == 0
