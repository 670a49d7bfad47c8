"""What ``yield X`` means inside a generator coroutine (reference 1.3): a nested call, a
blocking request, an awaitable, or a plain value handed straight back."""

from __future__ import annotations

import asyncio
import queue

import pytest

from discoro import AsynCoro, Coro, MonitorException

TIMEOUT = 10


# -- plain values -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [42, None, "text", (1, 2), [3], {"k": "v"}, 0, b"bytes"])
def test_yield_of_a_plain_value_returns_that_value(value):
    def gen(coro=None):
        got = yield value
        return ("got", got)

    assert Coro(gen).value(TIMEOUT) == ("got", value)


def test_yield_of_the_result_of_a_non_blocking_call():
    def gen(coro=None):
        return (yield coro.send("to myself")), (yield coro.receive())

    assert Coro(gen).value(TIMEOUT) == (0, "to myself")


def test_a_plain_yield_is_a_switch_point():
    order = []

    def step(tag, coro=None):
        for i in range(3):
            order.append((tag, i))
            yield i

    def parent(coro=None):
        # both start in this step, so both are ready before either runs
        a, b = Coro(step, "a"), Coro(step, "b")
        yield a.finish()
        yield b.finish()

    Coro(parent).value(TIMEOUT)
    # each plain yield lets the other ready coroutine run: the two interleave
    assert order.index(("b", 0)) < order.index(("a", 2))
    assert order.index(("a", 1)) < order.index(("b", 2))


# -- awaitables ---------------------------------------------------------------------------


def test_yield_of_an_asyncio_awaitable_awaits_it():
    async def helper(x):
        await asyncio.sleep(0)
        return x * 2

    def gen(coro=None):
        a = yield asyncio.sleep(0, result="slept")
        b = yield helper(21)
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(future.set_result, "future")
        c = yield future
        return a, b, c

    assert Coro(gen).value(TIMEOUT) == ("slept", 42, "future")


def test_an_awaitable_that_fails_raises_at_the_yield():
    async def failing():
        raise KeyError("inside")

    def gen(coro=None):
        try:
            yield failing()
        except KeyError as exc:
            return ("caught", exc.args[0])

    assert Coro(gen).value(TIMEOUT) == ("caught", "inside")


# -- nested generator calls ---------------------------------------------------------------


def level3(x, coro):
    y = yield coro.receive()
    return (x, y, AsynCoro.cur_coro() is coro)


def level2(x, coro):
    inner = yield level3(x + 1, coro)
    return ("level2", inner)


def level1(coro=None):
    result = yield level2(1, coro)
    return ("level1", result)


def test_nested_calls_pass_values_up_through_several_levels():
    c = Coro(level1)
    c.send("msg")
    assert c.value(TIMEOUT) == ("level1", ("level2", (2, "msg", True)))


def test_a_nested_call_runs_inside_the_same_coroutine():
    seen = []

    def inner(coro):
        seen.append(AsynCoro.cur_coro())
        yield
        seen.append(AsynCoro.cur_coro())

    def outer(coro=None):
        yield inner(coro)
        seen.append(AsynCoro.cur_coro())

    c = Coro(outer)
    c.value(TIMEOUT)
    assert seen == [c, c, c]


class Deep(Exception):
    pass


def raiser(depth, coro):
    if depth == 0:
        yield
        raise Deep("bottom")
    yield raiser(depth - 1, coro)
    raise AssertionError("not reached")


def test_exception_propagates_up_through_several_levels():
    def top(coro=None):
        try:
            yield raiser(4, coro)
        except Deep as exc:
            return ("caught at the top", str(exc))

    assert Coro(top).value(TIMEOUT) == ("caught at the top", "bottom")


def test_exception_caught_in_the_middle_level():
    def middle(coro):
        try:
            yield raiser(2, coro)
        except Deep:
            return "handled in the middle"

    def top(coro=None):
        result = yield middle(coro)
        return result

    assert Coro(top).value(TIMEOUT) == "handled in the middle"


def test_an_uncaught_exception_in_a_callee_ends_the_coroutine():
    monitor_box: queue.Queue = queue.Queue()

    def top(coro=None):
        yield raiser(3, coro)

    def watcher(coro=None):
        monitor_box.put((yield coro.receive()))

    w = Coro(watcher)
    t = Coro(top)
    t.notify(w)
    w.value(TIMEOUT)
    exc = monitor_box.get_nowait()
    assert isinstance(exc, MonitorException)
    assert exc.args[0] is t
    assert exc.args[1][0] is Deep
    assert str(exc.args[1][1]) == "bottom"


def test_the_caller_continues_after_a_nested_call():
    def counter(n, coro):
        for i in range(n):  # noqa: UP028 - the driver sends values back: no yield from
            yield i
        return n

    def caller(coro=None):
        results = []
        for n in (1, 3, 0):
            results.append((yield counter(n, coro)))
        after = yield "after"
        return results, after

    assert Coro(caller).value(TIMEOUT) == ([1, 3, 0], "after")


def test_a_callee_that_blocks_in_receive_and_sleep():
    signals: queue.Queue = queue.Queue()

    def inner(coro):
        signals.put("receiving")
        message = yield coro.receive()
        signals.put("sleeping")
        update = yield coro.sleep()
        return message, update

    def outer(coro=None):
        return (yield inner(coro))

    c = Coro(outer)
    assert signals.get(timeout=TIMEOUT) == "receiving"
    c.send("message")
    assert signals.get(timeout=TIMEOUT) == "sleeping"
    c.resume("update")
    assert c.value(TIMEOUT) == ("message", "update")


def test_deep_recursion_of_nested_calls():
    def down(n, coro):
        if n == 0:
            return (yield "bottom")
        return (yield down(n - 1, coro))

    def top(coro=None):
        return (yield down(500, coro))

    assert Coro(top).value(TIMEOUT) == "bottom"
