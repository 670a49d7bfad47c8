"""``async def`` coroutines (DESIGN decision 2): they await discoro's blocking calls and any
asyncio awaitable, and talk to generator coroutines both ways."""

from __future__ import annotations

import asyncio
import queue

from discoro import AsynCoro, Coro, MonitorException

TIMEOUT = 10


def test_async_coroutine_awaits_asyncio_sleep():
    async def afunc(coro=None):
        first = await asyncio.sleep(0.001, result="slept")
        second = await asyncio.sleep(0, result="again")
        return first, second, AsynCoro.cur_coro() is coro

    assert Coro(afunc).value(TIMEOUT) == ("slept", "again", True)


def test_async_coroutines_share_an_asyncio_queue():
    box: list[asyncio.Queue] = []
    signals: queue.Queue = queue.Queue()

    async def consumer(n, coro=None):
        box.append(asyncio.Queue())
        signals.put("queue made")
        return [await box[0].get() for _ in range(n)]

    async def producer(n, coro=None):
        for i in range(n):
            await box[0].put(i)
            if i % 3 == 0:
                await asyncio.sleep(0)

    c = Coro(consumer, 20)
    assert signals.get(timeout=TIMEOUT) == "queue made"
    Coro(producer, 20).value(TIMEOUT)
    assert c.value(TIMEOUT) == list(range(20))


def test_an_asyncio_queue_fed_from_a_thread():
    holder: list = []
    signals: queue.Queue = queue.Queue()

    async def consumer(coro=None):
        holder.append(asyncio.Queue())
        signals.put("queue made")
        got = []
        while (item := await holder[0].get()) is not None:
            got.append(item)
        return got

    c = Coro(consumer)
    assert signals.get(timeout=TIMEOUT) == "queue made"
    loop = AsynCoro.instance().loop
    for item in ["a", "b", "c", None]:
        loop.call_soon_threadsafe(holder[0].put_nowait, item)
    assert c.value(TIMEOUT) == ["a", "b", "c"]


def test_generator_and_async_coroutines_message_each_other_both_ways():
    def gen_side(coro=None):
        peer = yield coro.receive()  # the async side introduces itself
        total = 0
        for i in range(10):
            peer.send(("ping", i, coro))
            kind, n = yield coro.receive()
            assert kind == "pong"
            total += n
        peer.send(None)
        return total

    async def async_side(gen_coro, coro=None):
        gen_coro.send(coro)
        replies = 0
        while (message := await coro.receive()) is not None:
            _kind, i, sender = message
            assert sender is gen_coro
            assert await sender.deliver(("pong", i * 10)) == 1
            replies += 1
        return replies

    g = Coro(gen_side)
    a = Coro(async_side, g)
    assert g.value(TIMEOUT) == sum(i * 10 for i in range(10))
    assert a.value(TIMEOUT) == 10


def test_async_coroutine_awaits_a_generator_coroutines_finish_and_vice_versa():
    def gen_worker(coro=None):
        yield coro.sleep(0.001)
        return "generator result"

    async def async_worker(coro=None):
        await asyncio.sleep(0)
        return "async result"

    async def async_waiter(coro=None):
        return await Coro(gen_worker).finish()

    def gen_waiter(coro=None):
        return (yield Coro(async_worker).finish())

    assert Coro(async_waiter).value(TIMEOUT) == "generator result"
    assert Coro(gen_waiter).value(TIMEOUT) == "async result"


def test_async_coroutine_monitors_and_is_monitored_by_generators():
    async def failing(coro=None):
        await coro.receive()
        raise LookupError("async failure")

    async def async_monitor(target, coro=None):
        await coro.monitor(target)
        target.send("go")
        exc = await coro.receive()
        assert isinstance(exc, MonitorException)
        return exc.args[1][0]

    def gen_monitor(target, coro=None):
        yield coro.monitor(target)
        target.send("go")
        exc = yield coro.receive()
        return exc.args[1][0]

    assert Coro(async_monitor, Coro(failing)).value(TIMEOUT) is LookupError
    assert Coro(gen_monitor, Coro(failing)).value(TIMEOUT) is LookupError


def test_async_coroutine_creates_coroutines_of_both_styles():
    def gen_child(x, coro=None):
        yield
        return x + 1

    async def async_child(x, coro=None):
        return x + 2

    async def parent(coro=None):
        children = [Coro(gen_child, 1), Coro(async_child, 1)]
        return [await child.finish() for child in children]

    assert Coro(parent).value(TIMEOUT) == [2, 3]


def test_async_helpers_are_plain_awaits():
    async def helper(coro, depth):
        if depth == 0:
            return await coro.receive()
        return ("level", await helper(coro, depth - 1))

    async def afunc(coro=None):
        return await helper(coro, 3)

    c = Coro(afunc)
    c.send("bottom")
    assert c.value(TIMEOUT) == ("level", ("level", ("level", "bottom")))


def test_async_coroutine_uses_asyncio_gather_on_plain_awaitables():
    async def work(x):
        await asyncio.sleep(0)
        return x * 3

    async def afunc(coro=None):
        return await asyncio.gather(*(work(i) for i in range(5)))

    assert Coro(afunc).value(TIMEOUT) == [0, 3, 6, 9, 12]


def test_async_coroutine_receive_under_asyncio_wait_for():
    async def afunc(coro=None):
        try:
            await asyncio.wait_for(coro.receive(), 0.01)
        except TimeoutError:
            timed_out = True
        coro.send("queued")
        return timed_out, await asyncio.wait_for(coro.receive(), TIMEOUT)

    assert Coro(afunc).value(TIMEOUT) == (True, "queued")
