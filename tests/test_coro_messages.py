"""Messages (reference 1.5): ``send`` / ``deliver`` / ``receive``, FIFO mailboxes, receive
timeouts and ``alarm_value``, in both coroutine styles."""

from __future__ import annotations

import queue

import pytest

from discoro import Coro
from discoro.errors import WrongThreadError

TIMEOUT = 10


def collect(n, signals, coro=None):
    """Signal once, then receive ``n`` messages; return them in arrival order."""
    signals.put("ready")
    got = []
    for _ in range(n):
        got.append((yield coro.receive()))
    return got


async def async_collect(n, signals, coro=None):
    signals.put("ready")
    return [await coro.receive() for _ in range(n)]


STYLES = pytest.mark.parametrize("collector", [collect, async_collect], ids=["gen", "async"])


@STYLES
def test_messages_sent_before_the_first_receive_arrive_in_order(collector):
    signals: queue.Queue = queue.Queue()
    c = Coro(collector, 100, signals)
    for i in range(100):
        assert c.send(i) == 0
    assert c.value(TIMEOUT) == list(range(100))


@STYLES
def test_messages_to_a_blocked_receiver_arrive_in_order(collector):
    signals: queue.Queue = queue.Queue()
    c = Coro(collector, 3, signals)
    assert signals.get(timeout=TIMEOUT) == "ready"
    c.send("a")
    c.send({"b": 2})
    c.send(None)  # None is a message like any other
    assert c.value(TIMEOUT) == ["a", {"b": 2}, None]


def test_send_between_coroutines_keeps_order():
    def producer(target, coro=None):
        for i in range(50):
            target.send(i)
            if i % 7 == 0:
                yield  # let the consumer run between some of the sends
        yield

    async def consumer(coro=None):
        return [await coro.receive() for _ in range(50)]

    c = Coro(consumer)
    Coro(producer, c)
    assert c.value(TIMEOUT) == list(range(50))


def test_messages_are_objects_not_copies():
    payload = {"shared": []}

    def gen(coro=None):
        return (yield coro.receive())

    c = Coro(gen)
    c.send(payload)
    assert c.value(TIMEOUT) is payload


# -- deliver ------------------------------------------------------------------------------


def deliverer(target, message, coro=None):
    return (yield target.deliver(message))


async def async_deliverer(target, message, coro=None):
    return await target.deliver(message, timeout=5)


@pytest.mark.parametrize("sender", [deliverer, async_deliverer], ids=["gen", "async"])
@STYLES
def test_deliver_returns_1_locally_and_the_message_arrives(sender, collector):
    signals: queue.Queue = queue.Queue()
    c = Coro(collector, 2, signals)
    assert Coro(sender, c, "first").value(TIMEOUT) == 1
    assert signals.get(timeout=TIMEOUT) == "ready"
    assert Coro(sender, c, "second").value(TIMEOUT) == 1
    assert c.value(TIMEOUT) == ["first", "second"]


def test_send_and_deliver_to_an_ended_coroutine_fail():
    def gen(coro=None):
        yield

    c = Coro(gen)
    c.value(TIMEOUT)
    assert c.send("late") == -1
    assert Coro(deliverer, c, "late").value(TIMEOUT) == -1


# -- receive timeouts ---------------------------------------------------------------------


def timed_receive(timeout, alarm, coro=None):
    return (yield coro.receive(timeout=timeout, alarm_value=alarm))


async def async_timed_receive(timeout, alarm, coro=None):
    return await coro.receive(timeout, alarm)


TIMED = pytest.mark.parametrize(
    "receiver", [timed_receive, async_timed_receive], ids=["gen", "async"]
)


@TIMED
def test_receive_timeout_returns_alarm_value(receiver):
    assert Coro(receiver, 0.05, "alarm!").value(TIMEOUT) == "alarm!"


@TIMED
def test_receive_timeout_default_alarm_value_is_none(receiver):
    def gen(coro=None):
        return (yield coro.receive(0.01))

    async def afunc(coro=None):
        return await coro.receive(0.01)

    assert Coro(gen if receiver is timed_receive else afunc).value(TIMEOUT) is None


@TIMED
@pytest.mark.parametrize("timeout", [0, -1, 0.0])
def test_receive_with_timeout_at_most_zero_never_blocks(receiver, timeout):
    """The receiver creates a sender that is ready to run before it receives: a receive that
    blocked (even for 0 s) would let the sender run and get its message."""

    def sender(target, coro=None):
        target.send("from the sender")
        yield

    def gen(coro=None):
        Coro(sender, coro)
        first = yield coro.receive(timeout=timeout, alarm_value="empty")
        second = yield coro.receive()
        return first, second

    async def afunc(coro=None):
        Coro(sender, coro)
        first = await coro.receive(timeout, "empty")
        second = await coro.receive()
        return first, second

    target = gen if receiver is timed_receive else afunc
    assert Coro(target).value(TIMEOUT) == ("empty", "from the sender")


@STYLES
def test_receive_with_zero_timeout_returns_a_queued_message(collector):
    def gen(coro=None):
        coro.send("queued")
        return (yield coro.receive(0, "empty"))

    async def afunc(coro=None):
        coro.send("queued")
        return await coro.receive(0, "empty")

    target = gen if collector is collect else afunc
    assert Coro(target).value(TIMEOUT) == "queued"


@TIMED
def test_message_before_the_timeout_wins_and_the_timer_is_dropped(receiver):
    signals: queue.Queue = queue.Queue()

    def gen(coro=None):
        signals.put("ready")
        first = yield coro.receive(timeout=TIMEOUT, alarm_value="alarm")
        second = yield coro.receive(timeout=0.05, alarm_value="second alarm")
        return first, second

    async def afunc(coro=None):
        signals.put("ready")
        first = await coro.receive(timeout=TIMEOUT, alarm_value="alarm")
        second = await coro.receive(timeout=0.05, alarm_value="second alarm")
        return first, second

    c = Coro(gen if receiver is timed_receive else afunc)
    assert signals.get(timeout=TIMEOUT) == "ready"
    c.send("message")
    assert c.value(TIMEOUT) == ("message", "second alarm")


@TIMED
def test_a_message_arriving_after_a_timeout_is_kept(receiver):
    signals: queue.Queue = queue.Queue()

    def gen(coro=None):
        first = yield coro.receive(timeout=0.01, alarm_value="timed out")
        signals.put(first)
        return first, (yield coro.receive())

    async def afunc(coro=None):
        first = await coro.receive(timeout=0.01, alarm_value="timed out")
        signals.put(first)
        return first, await coro.receive()

    c = Coro(gen if receiver is timed_receive else afunc)
    assert signals.get(timeout=TIMEOUT) == "timed out"
    c.send("late message")
    assert c.value(TIMEOUT) == ("timed out", "late message")


def test_many_timed_receives_in_a_row():
    def gen(coro=None):
        got = []
        for i in range(20):
            if i % 2:
                coro.send(i)
            got.append((yield coro.receive(timeout=0.001, alarm_value="-")))
        return got

    expected = [i if i % 2 else "-" for i in range(20)]
    assert Coro(gen).value(TIMEOUT) == expected


# -- receive belongs to the coroutine itself ---------------------------------------------


def test_receive_on_another_coroutine_that_would_block_is_refused():
    def victim(coro=None):
        return (yield coro.receive())

    def intruder(target, coro=None):
        try:
            yield target.receive()
        except WrongThreadError as exc:
            return str(exc)
        return "no error"

    v = Coro(victim)
    text = Coro(intruder, v).value(TIMEOUT)
    assert "intruder" in text
    v.send("mine")
    assert v.value(TIMEOUT) == "mine"


# -- a message sent together with an exception is not lost -------------------------------


def test_message_sent_just_before_a_throw_is_not_lost():
    signals: queue.Queue = queue.Queue()

    def target(coro=None):
        signals.put("ready")
        try:
            first = yield coro.receive()
        except ValueError:
            first = "ValueError"
        second = yield coro.receive(timeout=0, alarm_value="LOST")
        return first, second

    def poker(victim, coro=None):
        victim.send("m")
        victim.throw(ValueError)
        yield

    t = Coro(target)
    assert signals.get(timeout=TIMEOUT) == "ready"
    Coro(poker, t)
    first, second = t.value(TIMEOUT)
    # either order is acceptable; losing the message is not
    assert {first, second} == {"m", "ValueError"}
