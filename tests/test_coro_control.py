"""Controlling a coroutine from outside (reference 1.5): ``throw``, ``sleep``/``suspend``
with ``resume``/``wakeup``, and ``set_daemon``, in both styles (``terminate``: see
test_coro_terminate.py)."""

from __future__ import annotations

import asyncio
import queue
import sys

import pytest

from discoro import AsynCoro, Coro

TIMEOUT = 10


class Boom(Exception):
    pass


# -- throw --------------------------------------------------------------------------------


def catch_in_receive(signals, coro=None):
    signals.put("ready")
    try:
        yield coro.receive()
    except Exception as exc:
        return type(exc), exc.args
    return "no exception"


async def async_catch_in_receive(signals, coro=None):
    signals.put("ready")
    try:
        await coro.receive()
    except Exception as exc:
        return type(exc), exc.args
    return "no exception"


def catch_in_sleep(signals, coro=None):
    signals.put("ready")
    try:
        yield coro.sleep()
    except Exception as exc:
        return type(exc), exc.args
    return "no exception"


async def async_catch_in_sleep(signals, coro=None):
    signals.put("ready")
    try:
        await coro.suspend()
    except Exception as exc:
        return type(exc), exc.args
    return "no exception"


BLOCKED = pytest.mark.parametrize(
    "blocked",
    [catch_in_receive, async_catch_in_receive, catch_in_sleep, async_catch_in_sleep],
    ids=["gen-receive", "async-receive", "gen-sleep", "async-sleep"],
)


def exc_info_of(exc):
    try:
        raise exc
    except Exception:
        return sys.exc_info()


@BLOCKED
@pytest.mark.parametrize(
    ("thrown", "expected"),
    [
        ((Boom,), (Boom, ())),
        ((Boom("instance"),), (Boom, ("instance",))),
        ((Boom, "value"), (Boom, ("value",))),
        ((Boom, Boom("a", "b")), (Boom, ("a", "b"))),
        (exc_info_of(Boom("from exc_info")), (Boom, ("from exc_info",))),
    ],
    ids=["class", "instance", "class+value", "class+instance", "exc_info"],
)
def test_throw_into_a_blocked_coroutine(blocked, thrown, expected):
    signals: queue.Queue = queue.Queue()
    c = Coro(blocked, signals)
    assert signals.get(timeout=TIMEOUT) == "ready"
    assert c.throw(*thrown) == 0
    assert c.value(TIMEOUT) == expected


def test_throw_into_a_generator_awaiting_an_asyncio_future():
    signals: queue.Queue = queue.Queue()

    def gen(coro=None):
        signals.put("ready")
        try:
            yield asyncio.sleep(3600)
        except Boom:
            return "interrupted"

    c = Coro(gen)
    assert signals.get(timeout=TIMEOUT) == "ready"
    c.throw(Boom)
    assert c.value(TIMEOUT) == "interrupted"


def test_throw_into_an_async_coroutine_awaiting_an_asyncio_event():
    signals: queue.Queue = queue.Queue()
    never: list[asyncio.Event] = []

    async def afunc(coro=None):
        never.append(asyncio.Event())
        signals.put("ready")
        try:
            await never[0].wait()
        except Boom:
            return "interrupted"
        return "the event was set"

    c = Coro(afunc)
    assert signals.get(timeout=TIMEOUT) == "ready"
    c.throw(Boom)
    try:
        assert c.value(0.5) == "interrupted"
    finally:
        c.terminate()
        c.value(TIMEOUT)


def test_throw_into_a_coroutine_blocked_in_a_nested_call():
    signals: queue.Queue = queue.Queue()
    trail = []

    def inner(coro):
        try:
            signals.put("ready")
            yield coro.receive()
        finally:
            trail.append("inner unwound")

    def outer(coro=None):
        try:
            yield inner(coro)
        except Boom as exc:
            trail.append("outer caught")
            return ("caught", exc.args)

    c = Coro(outer)
    assert signals.get(timeout=TIMEOUT) == "ready"
    c.throw(Boom("deep"))
    assert c.value(TIMEOUT) == ("caught", ("deep",))
    assert trail == ["inner unwound", "outer caught"]


def test_a_coroutine_survives_a_caught_throw_and_goes_on():
    signals: queue.Queue = queue.Queue()

    def gen(coro=None):
        caught = 0
        while caught < 3:
            signals.put("ready")
            try:
                message = yield coro.receive()
            except Boom:
                caught += 1
            else:
                return ("message", message, caught)
        signals.put("ready")
        return ("after", (yield coro.receive()), caught)

    c = Coro(gen)
    for _ in range(3):
        assert signals.get(timeout=TIMEOUT) == "ready"
        c.throw(Boom)
    assert signals.get(timeout=TIMEOUT) == "ready"
    c.send("final")
    assert c.value(TIMEOUT) == ("after", "final", 3)


def test_two_throws_in_a_row_both_arrive():
    signals: queue.Queue = queue.Queue()

    def target(coro=None):
        caught = []
        signals.put("ready")
        while True:
            try:
                message = yield coro.receive()
            except Boom as exc:
                caught.append(exc.args[0])
            else:
                return caught, message

    def poker(victim, coro=None):
        victim.throw(Boom, 1)
        victim.throw(Boom, 2)
        victim.send("end")
        yield

    t = Coro(target)
    assert signals.get(timeout=TIMEOUT) == "ready"
    Coro(poker, t)
    assert t.value(TIMEOUT) == ([1, 2], "end")


def test_throw_into_an_ended_coroutine_and_bad_throw_arguments():
    def gen(coro=None):
        yield

    c = Coro(gen)
    c.value(TIMEOUT)
    assert c.throw(Boom) == -1
    with pytest.raises(TypeError):
        c.throw("not an exception")
    with pytest.raises(TypeError):
        c.throw()


# -- sleep / suspend and resume / wakeup ---------------------------------------------------


def sleeper(signals, coro=None):
    signals.put("sleeping")
    return (yield coro.sleep())


async def async_sleeper(signals, coro=None):
    signals.put("sleeping")
    return await coro.suspend()


SLEEPERS = pytest.mark.parametrize("target", [sleeper, async_sleeper], ids=["gen", "async"])


@SLEEPERS
@pytest.mark.parametrize("method", ["resume", "wakeup"])
def test_resume_wakes_a_sleeper_with_the_update(target, method):
    signals: queue.Queue = queue.Queue()
    c = Coro(target, signals)
    assert signals.get(timeout=TIMEOUT) == "sleeping"
    assert getattr(c, method)({"update": 1}) == 0
    assert c.value(TIMEOUT) == {"update": 1}


@SLEEPERS
def test_resume_without_update_gives_none(target):
    signals: queue.Queue = queue.Queue()
    c = Coro(target, signals)
    assert signals.get(timeout=TIMEOUT) == "sleeping"
    c.resume()
    assert c.value(TIMEOUT) is None


def test_send_does_not_wake_a_sleeper_and_the_message_is_kept():
    signals: queue.Queue = queue.Queue()

    def gen(coro=None):
        signals.put("sleeping")
        woke_with = yield coro.sleep()
        return woke_with, (yield coro.receive(timeout=0, alarm_value="lost"))

    async def afunc(coro=None):
        signals.put("sleeping")
        woke_with = await coro.sleep()
        return woke_with, await coro.receive(timeout=0, alarm_value="lost")

    for target in (gen, afunc):
        c = Coro(target)
        assert signals.get(timeout=TIMEOUT) == "sleeping"
        c.send("message")
        c.resume("resumed")
        assert c.value(TIMEOUT) == ("resumed", "message")


def test_resume_wakes_only_a_sleeper():
    signals: queue.Queue = queue.Queue()

    def gen(coro=None):
        signals.put("receiving")
        message = yield coro.receive()
        # the resume sent while receiving is not remembered for a later sleep
        slept = yield coro.sleep(0.05, "alarm")
        return message, slept

    async def afunc(coro=None):
        signals.put("receiving")
        message = await coro.receive()
        slept = await coro.sleep(0.05, "alarm")
        return message, slept

    for target in (gen, afunc):
        c = Coro(target)
        assert signals.get(timeout=TIMEOUT) == "receiving"
        assert c.resume("ignored") == 0
        c.send("message")
        assert c.value(TIMEOUT) == ("message", "alarm")


@pytest.mark.parametrize("method", ["sleep", "suspend"])
def test_sleep_timeout_gives_alarm_value(method):
    def gen(coro=None):
        return (yield getattr(coro, method)(0.01, alarm_value="alarm")), (
            yield getattr(coro, method)(0.01)
        )

    async def afunc(coro=None):
        return (await getattr(coro, method)(0.01, "alarm")), await getattr(coro, method)(0.01)

    for target in (gen, afunc):
        assert Coro(target).value(TIMEOUT) == ("alarm", None)


@pytest.mark.parametrize("timeout", [0, -5])
def test_sleep_with_timeout_at_most_zero_returns_at_once(timeout):
    """A resume from a coroutine that is ready to run must not reach the sleep."""

    def resumer(target, coro=None):
        target.resume("resumed")
        yield

    def gen(coro=None):
        Coro(resumer, coro)
        return (yield coro.sleep(timeout, "at once"))

    async def afunc(coro=None):
        Coro(resumer, coro)
        return await coro.sleep(timeout, "at once")

    for target in (gen, afunc):
        assert Coro(target).value(TIMEOUT) == "at once"


def test_resume_before_the_timeout():
    signals: queue.Queue = queue.Queue()

    def gen(coro=None):
        signals.put("sleeping")
        first = yield coro.sleep(TIMEOUT, "alarm")
        second = yield coro.sleep(0.01, "second alarm")
        return first, second

    c = Coro(gen)
    assert signals.get(timeout=TIMEOUT) == "sleeping"
    c.resume("early")
    assert c.value(TIMEOUT) == ("early", "second alarm")


# -- set_daemon ---------------------------------------------------------------------------


def test_set_daemon_only_by_the_coroutine_itself():
    signals: queue.Queue = queue.Queue()
    results: queue.Queue = queue.Queue()

    def target(coro=None):
        signals.put("ready")
        yield coro.receive()
        results.put(("self", coro.set_daemon()))
        results.put(("self off", coro.set_daemon(False)))

    async def async_target(coro=None):
        signals.put("ready")
        await coro.receive()
        results.put(("self", coro.set_daemon(True)))
        results.put(("self off", coro.set_daemon(False)))

    def other(victim, coro=None):
        results.put(("other", victim.set_daemon()))
        yield

    for body in (target, async_target):
        c = Coro(body)
        assert signals.get(timeout=TIMEOUT) == "ready"
        assert c.set_daemon() == -1  # from the main thread
        Coro(other, c).value(TIMEOUT)
        c.send("go")
        c.value(TIMEOUT)
        assert [results.get_nowait() for _ in range(3)] == [
            ("other", -1),
            ("self", 0),
            ("self off", 0),
        ]


def test_cur_coro_is_none_in_threads():
    assert AsynCoro.cur_coro() is None
