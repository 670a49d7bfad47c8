"""Channel inside one process (reference 1.7), in both coroutine styles."""

from __future__ import annotations

import itertools
import logging
import pickle
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from discoro.core.channel import Channel
from discoro.core.coro import Coro
from discoro.core.kernel import AsynCoro
from discoro.core.log import logger
from discoro.core.references import channel_from_reference

if TYPE_CHECKING:
    from collections.abc import Iterator

_names = itertools.count()


def fresh(prefix: str = "chan") -> str:
    """A channel name no other test uses (all tests share one kernel)."""
    return f"{prefix}-{next(_names)}"


def run(target: Any, *args: Any) -> Any:
    return Coro(target, *args).value(timeout=5)


def gen_collector(count, main, coro=None):
    """Tell ``main`` it is ready, then return the next ``count`` messages."""
    main.send("ready")
    got = []
    for _ in range(count):
        got.append((yield coro.receive()))
    return got


async def async_collector(count, main, coro=None):
    main.send("ready")
    return [await coro.receive() for _ in range(count)]


COLLECTORS = {"generator": gen_collector, "async": async_collector}


@pytest.fixture(autouse=True)
def _local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the shared kernel local: Channel.register must not start networking here."""
    if not AsynCoro.instance().network_started:
        monkeypatch.setattr(AsynCoro, "_network_factory", None)


@pytest.fixture
def warnings_logged() -> Iterator[list[str]]:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Keep(logging.WARNING)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


# -- construction and transform -------------------------------------------------------------


def test_name_and_location() -> None:
    chan = Channel(fresh())
    kernel = AsynCoro.instance()
    assert chan.name.startswith("chan-")
    assert chan.location == kernel.location  # None until the process is networked
    assert chan._remote is False
    assert str(chan) == (chan.name if kernel.location is None else f"{chan.name}@{kernel.location}")
    chan.close()


def test_transform_must_take_two_parameters() -> None:
    with pytest.raises(TypeError):
        Channel(fresh(), transform=lambda msg: msg)
    with pytest.raises(TypeError):
        Channel(fresh(), transform=lambda name, msg, extra: msg)
    with pytest.raises(TypeError):
        Channel(fresh(), transform="not callable")  # type: ignore[arg-type]
    chan = Channel(fresh())
    with pytest.raises(TypeError):
        chan.set_transform(lambda *args: args)
    chan.set_transform(lambda name, msg: msg)
    chan.set_transform(None)
    chan.close()


def test_bad_name_and_bad_subscriber() -> None:
    with pytest.raises(TypeError):
        Channel("")
    chan = Channel(fresh())

    async def body(coro=None):
        with pytest.raises(TypeError):
            await chan.subscribe("not a coroutine")  # type: ignore[arg-type]
        return True

    assert run(body)
    chan.close()


# -- send -------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["generator", "async"])
def test_send_reaches_every_subscriber(style: str) -> None:
    chan = Channel(fresh())
    collector = COLLECTORS[style]

    def gen_main(coro=None):
        subs = [Coro(collector, 2, coro) for _ in range(3)]
        for sub in subs:
            yield coro.receive()
            assert (yield chan.subscribe(sub)) == 0
        assert (yield chan.subscribe(subs[0])) == 0  # subscribing twice is harmless
        assert chan.send("a") == 0
        assert chan.send("b") == 0
        results = []
        for sub in subs:
            results.append((yield sub.finish()))
        return results

    async def async_main(coro=None):
        subs = [Coro(collector, 2, coro) for _ in range(3)]
        for sub in subs:
            await coro.receive()
            assert await chan.subscribe(sub) == 0
        chan.send("a")
        chan.send("b")
        return [await sub.finish() for sub in subs]

    assert run(gen_main) == [["a", "b"]] * 3
    assert run(async_main) == [["a", "b"]] * 3
    chan.close()


def test_transform_rewrites_and_drops() -> None:
    seen: list[str] = []

    def transform(name: str, msg: Any) -> Any:
        seen.append(name)
        return None if msg % 2 else msg * 10

    chan = Channel(fresh(), transform)

    async def main(coro=None):
        await chan.subscribe(coro)
        for i in range(5):
            chan.send(i)
        first = [await coro.receive() for _ in range(3)]
        chan.set_transform(lambda name, msg: ("raw", msg))
        chan.send(7)
        return first, await coro.receive()

    assert run(main) == ([0, 20, 40], ("raw", 7))
    assert seen == [chan.name] * 5
    chan.close()


def test_send_from_another_thread() -> None:
    chan = Channel(fresh())

    def listener(coro=None):
        yield chan.subscribe(coro)
        ready.send("subscribed")
        return (yield coro.receive(timeout=5))

    async def gate(coro=None):
        return await coro.receive(timeout=5)

    ready = Coro(gate)
    sub = Coro(listener)
    assert ready.value(timeout=5) == "subscribed"
    assert chan.send("from main") == 0
    assert sub.value(timeout=5) == "from main"
    chan.close()


def test_unsubscribe_and_dead_subscriber_dropped() -> None:
    chan = Channel(fresh())

    def short(coro=None):
        yield coro.receive(timeout=0)

    def gen_main(coro=None):
        dead = Coro(short)
        yield dead.finish()
        refused = yield chan.subscribe(dead)
        yield chan.subscribe(coro)
        first = yield chan.unsubscribe(coro)
        second = yield chan.unsubscribe(coro)
        return refused, first, second

    assert run(gen_main) == (-1, 0, -1)

    async def async_main(coro=None):
        doomed = Coro(gen_collector, 1, coro)
        await coro.receive()
        await chan.subscribe(doomed)
        await chan.subscribe(coro)
        doomed.terminate()
        await doomed.finish()
        chan.send("x")  # doomed's send fails: it is dropped
        got = await coro.receive()
        return got, list(chan._subscribers) == [coro]

    assert run(async_main) == ("x", True)
    chan.close()


# -- deliver ----------------------------------------------------------------------------------


def test_deliver_counts_recipients() -> None:
    chan = Channel(fresh())

    def gen_main(coro=None):
        none = yield chan.deliver("nobody")
        yield chan.subscribe(coro)
        one = yield chan.deliver("m1")
        got = yield coro.receive()
        return none, one, got

    async def async_main(coro=None):
        helper = Coro(async_collector, 1, coro)
        await coro.receive()
        await chan.subscribe(helper)
        await chan.subscribe(coro)
        two = await chan.deliver("m2", timeout=1)  # gen_main's coroutine has ended: dropped
        return two, await coro.receive(), await helper.finish()

    assert run(gen_main) == (0, 1, "m1")
    assert run(async_main) == (2, "m2", ["m2"])
    chan.close()


@pytest.mark.parametrize("style", ["generator", "async"])
def test_deliver_waits_for_n_subscribers(style: str) -> None:
    chan = Channel(fresh())
    collector = COLLECTORS[style]

    def gen_sender(main, coro=None):
        main.send("delivering")
        return (yield chan.deliver("hello", n=2))

    async def async_sender(main, coro=None):
        main.send("delivering")
        return await chan.deliver("hello", timeout=5, n=2)

    sender = gen_sender if style == "generator" else async_sender

    async def main(coro=None):
        s = Coro(sender, coro)
        await coro.receive()
        subs = []
        for _ in range(2):
            sub = Coro(collector, 1, coro)
            await coro.receive()
            subs.append(sub)
            await chan.subscribe(sub)
        return await s.finish(), [await sub.finish() for sub in subs]

    assert run(main) == (2, [["hello"], ["hello"]])
    chan.close()


def test_deliver_times_out_waiting_for_subscribers() -> None:
    chan = Channel(fresh())

    def gen_main(coro=None):
        return (yield chan.deliver("x", timeout=0.02, n=1))

    async def async_main(coro=None):
        return await chan.deliver("x", timeout=0, n=1), len(chan._subscribed)

    assert run(gen_main) == 0
    assert run(async_main) == (0, 0)
    chan.close()


def test_deliver_drops_transformed_message() -> None:
    chan = Channel(fresh(), lambda name, msg: None)

    async def main(coro=None):
        await chan.subscribe(coro)
        return await chan.deliver("gone"), await coro.receive(timeout=0, alarm_value="empty")

    assert run(main) == (0, "empty")
    chan.close()


# -- nested channels --------------------------------------------------------------------------


def test_nested_channels_send_and_count() -> None:
    top, middle = Channel(fresh("top")), Channel(fresh("middle"), lambda n, m: f"{n}:{m}")

    def gen_main(coro=None):
        a = Coro(gen_collector, 2, coro)
        b = Coro(async_collector, 2, coro)
        yield coro.receive()
        yield coro.receive()
        yield middle.subscribe(a)
        yield middle.subscribe(b)
        yield top.subscribe(middle)
        yield top.subscribe(coro)
        top.send("s")
        count = yield top.deliver("d")
        mine = [(yield coro.receive()), (yield coro.receive())]
        return count, mine, (yield a.finish()), (yield b.finish())

    count, mine, a_got, b_got = run(gen_main)
    assert count == 3
    assert mine == ["s", "d"]
    assert a_got == b_got == [f"{middle.name}:s", f"{middle.name}:d"]
    top.close()
    middle.close()


def test_cycles_are_refused() -> None:
    a, b, c = Channel(fresh()), Channel(fresh()), Channel(fresh())

    async def main(coro=None):
        return [
            await a.subscribe(a),
            await a.subscribe(b),
            await b.subscribe(c),
            await c.subscribe(a),
            await c.subscribe(b),
        ]

    assert run(main) == [-1, 0, 0, -1, -1]
    for chan in (a, b, c):
        chan.close()


# -- names, pickling, close -------------------------------------------------------------------


def test_register_locate_unregister() -> None:
    name = fresh("named")
    chan = Channel(name)

    def gen_main(coro=None):
        registered = chan.register()
        found = yield Channel.locate(name)
        return registered, found

    async def async_main(coro=None):
        found = await Channel.locate(name)
        return found, chan.unregister(), chan.unregister()

    assert run(gen_main) == (0, chan)
    assert run(async_main) == (chan, 0, -1)
    chan.close()


def test_locate_finds_only_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    name = fresh("hidden")
    chan = Channel(name)
    asked: list[tuple[Any, ...]] = []

    class FakeNetwork:
        async def locate(self, *args: Any) -> None:
            asked.append(args)

    monkeypatch.setattr(AsynCoro.instance(), "network", FakeNetwork)

    async def main(coro=None):
        return await Channel.locate(name, timeout=0.01)

    assert run(main) is None
    assert asked == [("channel", name, None, 0.01)]
    chan.close()


def test_duplicate_name(warnings_logged: list[str]) -> None:
    name = fresh("dup")
    first = Channel(name)
    second = Channel(name)
    assert any("duplicate" in text for text in warnings_logged)
    assert AsynCoro.instance()._channels[name] is first
    assert second.register() == -1
    assert first.register() == 0
    first.close()
    assert second.register() == 0  # the name is free again
    assert AsynCoro.instance()._channels[name] is second
    second.close()


def test_equality_and_pickling() -> None:
    name = fresh("pickled")
    chan = Channel(name)
    assert pickle.loads(pickle.dumps(chan)) is chan
    assert chan == Channel._gone(name)
    assert hash(chan) == hash(Channel._gone(name))
    assert chan != Channel(fresh())
    chan.close()
    gone = pickle.loads(pickle.dumps(chan))
    assert gone is not chan and gone.send("x") == -1


class FakeLocation(NamedTuple):
    addr: str
    port: int


def test_reference_from_elsewhere_is_remote_handle() -> None:
    handle = channel_from_reference("far", FakeLocation("10.1.2.3", 51350))
    assert handle._remote is True
    assert handle.name == "far"
    assert handle.location == FakeLocation("10.1.2.3", 51350)
    assert str(handle) == "far@FakeLocation(addr='10.1.2.3', port=51350)"
    assert handle == channel_from_reference("far", FakeLocation("10.1.2.3", 51350))
    assert handle != channel_from_reference("far", FakeLocation("10.1.2.4", 51350))
    assert handle.register() == -1
    with pytest.raises(TypeError):
        handle.close()
    with pytest.raises(TypeError):
        handle.set_transform(None)


def test_close_forgets_subscribers_and_wakes_deliver() -> None:
    name = fresh("closing")
    chan = Channel(name)

    def gen_sender(main, coro=None):
        main.send("waiting")
        return (yield chan.deliver("x", n=5))

    async def main(coro=None):
        sender = Coro(gen_sender, coro)
        await coro.receive()
        await chan.subscribe(coro)
        chan.register()
        chan.close()
        result = await sender.finish()
        return (
            result,
            len(chan._subscribers),
            chan.send("late"),
            await chan.subscribe(coro),
            await chan.deliver("late"),
            chan._registered,
            name in AsynCoro.instance()._channels,
        )

    assert run(main) == (-1, 0, -1, -1, -1, False, False)
