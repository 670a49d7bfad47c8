"""Hot swapping a coroutine's generator (reference 1.5, 1.6): accepted when the
`HotSwapException` is not caught, refused when it is, deferred while the coroutine is in a
nested call or not swappable; the mailbox is kept; a monitor restarts a dead coroutine."""

from __future__ import annotations

import inspect
import queue

import pytest

from discoro import Coro, HotSwapException, MonitorException
from discoro.errors import NotACoroutineFunction

TIMEOUT = 10


def replacement(tag, coro=None):
    """The new generator: reports what it finds in the (kept) mailbox."""
    got = []
    while True:
        message = yield coro.receive(timeout=0, alarm_value=None)
        if message is None:
            break
        got.append(message)
    return ("replacement", tag, got, coro.name)


def swappable_receiver(signals, coro=None):
    coro.hot_swappable(True)
    signals.put("ready")
    yield coro.receive()
    return "old body ended"


def test_swap_accepted_when_not_caught():
    signals: queue.Queue = queue.Queue()
    c = Coro(swappable_receiver, signals)
    before = str(c)
    assert signals.get(timeout=TIMEOUT) == "ready"
    assert c.hot_swap(replacement, "new") == 0
    assert c.value(TIMEOUT) == ("replacement", "new", [], "swappable_receiver")
    assert str(c) == before


def test_swap_of_a_sleeping_coroutine_keeps_the_mailbox():
    signals: queue.Queue = queue.Queue()

    def old(coro=None):
        coro.hot_swappable(True)
        signals.put("ready")
        yield coro.sleep()
        return "old body ended"

    c = Coro(old)
    assert signals.get(timeout=TIMEOUT) == "ready"
    c.send("m1")  # messages do not wake a sleeper; they wait in the mailbox
    c.send("m2")
    c.hot_swap(replacement, "kept")
    assert c.value(TIMEOUT) == ("replacement", "kept", ["m1", "m2"], "old")


def test_swap_refused_when_caught():
    signals: queue.Queue = queue.Queue()
    seen = []

    def old(coro=None):
        coro.hot_swappable(True)
        signals.put("ready")
        try:
            yield coro.receive()
        except HotSwapException as exc:
            new_gen = exc.args[0]
            seen.append((inspect.isgenerator(new_gen), new_gen.gi_code.co_name))
            new_gen.close()
        signals.put("refused")
        return ("old body", (yield coro.receive()))

    c = Coro(old)
    assert signals.get(timeout=TIMEOUT) == "ready"
    c.hot_swap(replacement, "refused")
    assert signals.get(timeout=TIMEOUT) == "refused"
    c.send("still the old body")
    assert c.value(TIMEOUT) == ("old body", "still the old body")
    assert seen == [(True, "replacement")]


def test_swap_deferred_while_in_a_nested_call():
    signals: queue.Queue = queue.Queue()
    trail = []

    def inner(coro):
        signals.put("in the callee")
        message = yield coro.receive()
        trail.append(("callee got", message))
        return message

    def old(coro=None):
        coro.hot_swappable(True)
        yield inner(coro)
        yield coro.receive()
        return "old body ended"

    c = Coro(old)
    assert signals.get(timeout=TIMEOUT) == "in the callee"
    c.hot_swap(replacement, "after the call")
    c.send("for the callee")
    assert c.value(TIMEOUT)[:2] == ("replacement", "after the call")
    assert trail == [("callee got", "for the callee")]


def test_swap_deferred_while_not_swappable():
    signals: queue.Queue = queue.Queue()
    trail = []

    def old(coro=None):
        signals.put("not swappable yet")
        message = yield coro.receive()
        trail.append(("old body got", message))
        coro.hot_swappable(True)
        yield "a switch point"
        trail.append("old body went on")
        return "old body ended"

    c = Coro(old)
    assert signals.get(timeout=TIMEOUT) == "not swappable yet"
    c.hot_swap(replacement, "deferred")
    c.send("first")
    assert c.value(TIMEOUT)[:2] == ("replacement", "deferred")
    assert trail == [("old body got", "first")]


def test_a_coroutine_with_a_deferred_swap_pending_still_blocks_and_receives():
    signals: queue.Queue = queue.Queue()
    trail = []

    def old(coro=None):
        signals.put("first receive")
        first = yield coro.receive()
        signals.put("second receive")  # blocks in this same step, the swap still pending
        second = yield coro.receive()
        trail.append((first, second))
        coro.hot_swappable(True)
        yield "a switch point"
        return "old body ended"

    c = Coro(old)
    assert signals.get(timeout=TIMEOUT) == "first receive"
    c.hot_swap(replacement, "deferred")
    c.send("first")
    assert signals.get(timeout=TIMEOUT) == "second receive"
    c.send("second")  # runs on the loop after the step that blocked
    assert c.value(TIMEOUT) == ("replacement", "deferred", [], "old")
    assert trail == [("first", "second")]


def test_deferred_swap_reaches_a_coroutine_that_becomes_swappable_and_blocks():
    signals: queue.Queue = queue.Queue()

    def old(coro=None):
        signals.put("not swappable yet")
        yield coro.receive()
        coro.hot_swappable(True)
        yield coro.receive()  # the pending swap must interrupt this receive
        return "old body ended"

    c = Coro(old)
    assert signals.get(timeout=TIMEOUT) == "not swappable yet"
    c.hot_swap(replacement, "pending")
    c.send("first")
    try:
        assert c.value(0.5)[:2] == ("replacement", "pending")
    finally:
        c.send("unblock")
        c.value(TIMEOUT)


def test_the_new_body_is_swappable_only_when_it_says_so():
    signals: queue.Queue = queue.Queue()

    def second(coro=None):
        signals.put("second body receiving")
        try:
            message = yield coro.receive()
        except HotSwapException:
            return "second body was swapped"
        return ("second body got", message)

    c = Coro(swappable_receiver, signals)
    assert signals.get(timeout=TIMEOUT) == "ready"
    c.hot_swap(second)
    assert signals.get(timeout=TIMEOUT) == "second body receiving"
    c.hot_swap(replacement, "third")  # deferred: the second body is not swappable
    c.send("message")
    assert c.value(TIMEOUT) == ("second body got", "message")


def test_restart_of_a_coroutine_that_died_with_an_exception():
    results: queue.Queue = queue.Queue()

    def worker(attempt, coro=None):
        message = yield coro.receive()
        if attempt == 1:
            raise ValueError("first attempt fails")
        return ("attempt", attempt, message)

    def supervisor(coro=None):
        w = Coro(worker, 1)
        yield coro.monitor(w)
        w.send("job")
        exc = yield coro.receive()
        assert isinstance(exc, MonitorException)
        results.put(exc.args[1][0])
        assert exc.args[0] is w
        assert exc.args[0].hot_swap(worker, 2) == 0
        w.send("job again")
        return w, (yield w.finish())

    w, value = Coro(supervisor).value(TIMEOUT)
    assert results.get_nowait() is ValueError
    assert value == ("attempt", 2, "job again")
    assert w.value(TIMEOUT) == ("attempt", 2, "job again")


def test_a_normally_ended_coroutine_is_not_restarted():
    def done(coro=None):
        yield
        return "first life"

    c = Coro(done)
    assert c.value(TIMEOUT) == "first life"
    c.hot_swap(replacement, "second life")
    assert c.send("anyone there?") == -1
    assert c.value(TIMEOUT) == "first life"


def test_hot_swap_needs_a_generator_function_and_a_generator_coroutine():
    signals: queue.Queue = queue.Queue()
    c = Coro(swappable_receiver, signals)

    def plain(coro=None):
        return 1

    async def afunc(coro=None):
        await coro.receive()

    try:
        with pytest.raises(NotACoroutineFunction, match="plain"):
            c.hot_swap(plain)
        a = Coro(afunc)
        with pytest.raises(TypeError):
            a.hot_swap(replacement, "x")
        a.send(None)
        a.value(TIMEOUT)
    finally:
        c.send(None)
        c.value(TIMEOUT)
