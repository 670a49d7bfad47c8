"""``sleep(0)`` / ``suspend(0)`` are real switch points (issue 9): the event loop runs a turn
(its I/O callbacks, every other ready coroutine) before the coroutine goes on, in both styles.

Loop turns are counted with a callback that re-arms itself with ``loop.call_soon``: it runs
once per turn of the loop."""

from __future__ import annotations

import asyncio
import socket

import pytest

from discoro import Coro

TIMEOUT = 10
ROUNDS = 200


class TurnCounter:
    """Counts loop turns while armed (one ``call_soon`` callback per turn)."""

    def __init__(self) -> None:
        self.turns = 0
        self.armed = True
        self.loop = asyncio.get_running_loop()
        self.loop.call_soon(self.tick)

    def tick(self) -> None:
        if self.armed:
            self.turns += 1
            self.loop.call_soon(self.tick)


def gen_sleep_zero(coro=None):
    counter = TurnCounter()
    seen = []
    for _ in range(ROUNDS):
        before = counter.turns
        alarm = yield coro.sleep(0, "alarm")
        seen.append((counter.turns - before, alarm))
    counter.armed = False
    return seen


def gen_suspend_zero(coro=None):
    counter = TurnCounter()
    seen = []
    for _ in range(ROUNDS):
        before = counter.turns
        alarm = yield coro.suspend(0, "alarm")
        seen.append((counter.turns - before, alarm))
    counter.armed = False
    return seen


async def async_sleep_zero(coro=None):
    counter = TurnCounter()
    seen = []
    for _ in range(ROUNDS):
        before = counter.turns
        alarm = await coro.sleep(0, "alarm")
        seen.append((counter.turns - before, alarm))
    counter.armed = False
    return seen


@pytest.mark.parametrize("target", [gen_sleep_zero, gen_suspend_zero, async_sleep_zero])
def test_each_sleep_zero_lets_the_loop_turn_once(target):
    seen = Coro(target).value(TIMEOUT)
    assert seen == [(1, "alarm")] * ROUNDS


def test_negative_timeout_is_a_switch_too():
    def sleeper(coro=None):
        counter = TurnCounter()
        before = counter.turns
        value = yield coro.suspend(-1, "alarm")
        counter.armed = False
        return counter.turns - before, value

    assert Coro(sleeper).value(TIMEOUT) == (1, "alarm")


def test_coroutines_that_sleep_zero_take_turns():
    counts = {"a": 0, "b": 0}

    def worker(me, other, coro=None):
        observed = []
        for _ in range(ROUNDS):
            counts[me] += 1
            observed.append(counts[other])
            yield coro.sleep(0)
        return observed

    def parent(coro=None):
        # created in one step of the loop thread: both start in the same loop turn
        first, second = Coro(worker, "a", "b"), Coro(worker, "b", "a")
        return (yield first.finish()), (yield second.finish())

    seen_by_a, seen_by_b = Coro(parent).value(TIMEOUT)
    # each sees the other move on by one step between two of its own sleep(0)s
    assert seen_by_a == list(range(ROUNDS))
    assert seen_by_b == list(range(1, ROUNDS + 1))


class Socketpair:
    """A byte written to one end; a reader callback on the loop records it at the other."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(False)
        self.arrived: list[bytes] = []
        self.loop.add_reader(self.reader, lambda: self.arrived.append(self.reader.recv(16)))
        self.writer.send(b"ping")

    def close(self) -> None:
        self.loop.remove_reader(self.reader)
        self.reader.close()
        self.writer.close()


def gen_wait_for_the_byte(coro=None):
    pair = Socketpair()
    sleeps = 0
    while not pair.arrived and sleeps < 100:
        yield coro.sleep(0)
        sleeps += 1
    pair.close()
    return sleeps, pair.arrived


async def async_wait_for_the_byte(coro=None):
    pair = Socketpair()
    sleeps = 0
    while not pair.arrived and sleeps < 100:
        await coro.sleep(0)
        sleeps += 1
    pair.close()
    return sleeps, pair.arrived


@pytest.mark.parametrize("target", [gen_wait_for_the_byte, async_wait_for_the_byte])
def test_socket_readiness_is_handled_between_sleep_zeros(target):
    sleeps, arrived = Coro(target).value(TIMEOUT)
    assert arrived == [b"ping"]
    assert sleeps <= 2  # the turn after the write polls the socket; its callback runs next
