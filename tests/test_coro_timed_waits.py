"""Timed waits share one alarm per coroutine (`Coro._block`, `Coro._ring`): a later wait
with a later deadline reuses the armed alarm, one with an earlier deadline re-arms it. Every
timed wait must still end at its own deadline, never at an earlier wait's, and a coroutine
that ends with its alarm armed is not kept alive by it."""

from __future__ import annotations

import gc
import time
import weakref

import pytest

from discoro import Coro

TIMEOUT = 20
ALARM = object()


def send_later(target, delays_and_messages, coro=None):
    """Send each message after its delay, so ``target`` is already waiting for it (a message
    already in the mailbox is taken without any wait, and so without the alarm)."""
    for delay, message in delays_and_messages:
        yield coro.sleep(delay)
        target.send(message)


@pytest.mark.timeout(TIMEOUT)
def test_a_shorter_wait_after_a_long_one_ends_at_its_own_deadline():
    def waiter(coro=None):
        first = yield coro.receive(timeout=600, alarm_value=ALARM)  # alarm armed for 600 s
        started = time.monotonic()
        second = yield coro.receive(timeout=0.1, alarm_value=ALARM)  # must re-arm earlier
        return first, second, time.monotonic() - started

    c = Coro(waiter)
    Coro(send_later, c, [(0.1, "hello")])
    first, second, waited = c.value(TIMEOUT - 5)
    assert first == "hello"
    assert second is ALARM
    assert 0.05 <= waited < 60  # ended by its own 0.1 s deadline, not the 600 s alarm


@pytest.mark.timeout(TIMEOUT)
def test_a_longer_wait_after_a_short_one_is_not_cut_short_by_the_old_alarm():
    def waiter(coro=None):
        first = yield coro.receive(timeout=0.3, alarm_value=ALARM)
        second = yield coro.receive(timeout=TIMEOUT, alarm_value=ALARM)  # reuses the alarm
        return first, second

    c = Coro(waiter)
    # "late" comes well after the first wait's deadline (had the alarm armed for that one
    # ended the second wait, it would get ALARM)
    Coro(send_later, c, [(0.01, "early"), (0.5, "late")])
    assert c.value(TIMEOUT - 5) == ("early", "late")


@pytest.mark.timeout(TIMEOUT)
def test_many_timed_receives_then_a_timeout_then_a_sleep():
    def loop(n, coro=None):
        got = []
        for _ in range(n):
            got.append((yield coro.receive(timeout=30, alarm_value=ALARM)))
        got.append((yield coro.receive(timeout=0.05, alarm_value=ALARM)))
        started = time.monotonic()
        yield coro.sleep(0.05)
        return got, time.monotonic() - started

    c = Coro(loop, 1000)
    for i in range(1000):
        c.send(i)
    got, slept = c.value(TIMEOUT - 5)
    assert got == [*range(1000), ALARM]
    assert slept >= 0.04


@pytest.mark.timeout(TIMEOUT)
def test_an_ended_coroutine_is_not_kept_alive_by_its_armed_alarm():
    def once(coro=None):
        return (yield coro.receive(timeout=600))

    c = Coro(once)
    Coro(send_later, c, [(0.1, 7)])
    assert c.value(TIMEOUT - 5) == 7
    ref = weakref.ref(c)
    del c
    gc.collect()
    assert ref() is None
