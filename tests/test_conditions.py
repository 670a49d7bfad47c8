"""Condition, Event and Semaphore (reference 1.9), in both coroutine styles."""

from __future__ import annotations

from typing import Any

import pytest

from discoro.core.conditions import Condition, Event, Semaphore
from discoro.core.coro import Coro
from testing import wait_all_blocked


def run(target: Any, *args: Any) -> Any:
    return Coro(target, *args).value(timeout=5)


# -- Condition --------------------------------------------------------------------------------


def test_condition_needs_its_lock() -> None:
    cond = Condition()

    def gen_body(coro=None):
        errors = 0
        for call in (cond.notify, cond.notify_all, cond.notifyAll):
            try:
                call()
            except RuntimeError:
                errors += 1
        try:
            yield cond.wait()
        except RuntimeError:
            errors += 1
        return errors

    async def async_body(coro=None):
        with pytest.raises(RuntimeError):
            await cond.wait(0.01)
        with pytest.raises(RuntimeError):
            cond.notify()
        return 4

    assert run(gen_body) == 4
    assert run(async_body) == 4


def test_condition_wait_notify_keeps_depth_generator() -> None:
    cond = Condition()

    def consumer(main, coro=None):
        yield cond.acquire()
        yield cond.acquire()  # depth 2
        main.send("waiting")
        notified = yield cond.wait()
        cond.release()
        cond.release()
        try:
            cond.release()
        except RuntimeError:
            return notified, "depth restored"
        return notified, "depth lost"

    def producer(coro=None):
        c = Coro(consumer, coro)
        yield coro.receive()
        got = yield cond.acquire(blocking=False)  # wait() released the lock completely
        cond.notify()
        cond.release()
        return got, (yield c.finish())

    assert run(producer) == (True, (True, "depth restored"))
    assert not cond.locked()


def test_condition_wait_notify_keeps_depth_async() -> None:
    cond = Condition()

    async def consumer(main, coro=None):
        await cond.acquire()
        await cond.acquire()
        main.send("waiting")
        notified = await cond.wait()
        held = cond.locked()
        cond.release()
        cond.release()
        with pytest.raises(RuntimeError):
            cond.release()
        return notified, held

    async def producer(coro=None):
        c = Coro(consumer, coro)
        await coro.receive()
        async with cond:
            cond.notify()
        return await c.finish()

    assert run(producer) == (True, True)
    assert not cond.locked()


def test_condition_wait_timeout() -> None:
    cond = Condition()

    def gen_body(coro=None):
        yield cond.acquire()
        result = yield cond.wait(0.02)
        held = cond.locked()
        cond.release()
        return result, held

    async def async_body(coro=None):
        async with cond:
            result = await cond.wait(timeout=0.02)
            return result, cond.locked()

    assert run(gen_body) == (False, True)
    assert run(async_body) == (False, True)
    assert not cond.locked()


@pytest.mark.parametrize("style", ["generator", "async"])
def test_condition_notify_n_and_all_fifo(style: str) -> None:
    cond = Condition()
    woken: list[int] = []

    def gen_waiter(i, main, coro=None):
        yield cond.acquire()
        main.send(i)
        yield cond.wait()
        woken.append(i)
        cond.release()

    async def async_waiter(i, main, coro=None):
        async with cond:
            main.send(i)
            await cond.wait()
            woken.append(i)

    waiter = gen_waiter if style == "generator" else async_waiter

    async def main(coro=None):
        waiters = []
        for i in range(5):
            waiters.append(Coro(waiter, i, coro))
            await coro.receive()
        async with cond:
            cond.notify(2)
        await waiters[1].finish()
        first = list(woken)
        async with cond:
            cond.notifyAll()
        for w in waiters:
            await w.finish()
        return first

    assert run(main) == [0, 1]
    assert woken == [0, 1, 2, 3, 4]


def test_condition_terminated_waiter() -> None:
    """A terminated waiter leaves the queue; it holds the lock again on its way out (as after
    any wait), so its own ``finally: release()`` is valid and frees the condition."""
    cond = Condition()

    def gen_waiter(main, coro=None):
        yield cond.acquire()
        try:
            main.send("waiting")
            yield cond.wait()
        finally:
            cond.release()

    async def async_waiter(main, coro=None):
        async with cond:
            main.send("waiting")
            await cond.wait()

    async def main(coro=None):
        results = []
        for waiter in (gen_waiter, async_waiter):
            w = Coro(waiter, coro)
            await coro.receive()
            w.terminate()
            await w.finish()
            results.append((len(cond._waiters), cond.locked()))
        return results

    assert run(main) == [(0, False), (0, False)]


@pytest.mark.parametrize("style", ["generator", "async"])
def test_condition_notification_of_terminated_waiter_passes_on(style: str) -> None:
    cond = Condition()
    woken: list[str] = []

    def gen_waiter(name, main, coro=None):
        yield cond.acquire()
        try:
            main.send(name)
            yield cond.wait()
            woken.append(name)
        finally:
            cond.release()

    async def async_waiter(name, main, coro=None):
        async with cond:
            main.send(name)
            await cond.wait()
            woken.append(name)

    waiter = gen_waiter if style == "generator" else async_waiter

    async def main(coro=None):
        a = Coro(waiter, "a", coro)
        await coro.receive()
        b = Coro(waiter, "b", coro)
        await coro.receive()
        async with cond:
            cond.notify()  # wakes a ...
            a.terminate()  # ... which is terminated before it runs
        await a.finish()
        await b.finish()
        return len(cond._waiters), cond.locked()

    assert run(main) == (0, False)
    assert woken == ["b"]


def test_condition_thrown_waiter_holds_lock_again_generator() -> None:
    cond = Condition()
    trail: list[str] = []

    def waiter(main, coro=None):
        yield cond.acquire()
        main.send("waiting")
        try:
            yield cond.wait()
        except ValueError:
            trail.append("has the lock again")
            held = cond.locked()
            cond.release()
            return "thrown", held
        return "notified", None

    async def main(coro=None):
        w = Coro(waiter, coro)
        await coro.receive()
        await cond.acquire()  # hold it so the thrown waiter must queue to get it back
        w.throw(ValueError)
        await wait_all_blocked()  # the waiter took the throw and now waits for the lock
        before_release = list(trail)
        cond.release()
        return await w.finish(), before_release, len(cond._waiters), cond.locked()

    assert run(main) == (("thrown", True), [], 0, False)


# -- Event ------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["generator", "async"])
def test_event_set_wakes_all(style: str) -> None:
    event = Event()

    def gen_waiter(main, coro=None):
        main.send("waiting")
        return (yield event.wait())

    async def async_waiter(main, coro=None):
        main.send("waiting")
        return await event.wait()

    waiter = gen_waiter if style == "generator" else async_waiter

    async def main(coro=None):
        waiters = [Coro(waiter, coro) for _ in range(3)]
        for _ in waiters:
            await coro.receive()
        event.set()
        return [await w.finish() for w in waiters]

    assert run(main) == [True, True, True]
    assert event.is_set() and event.isSet()
    assert len(event._waiters) == 0


def test_event_wait_set_clear_timeout() -> None:
    event = Event()

    def gen_body(coro=None):
        timed_out = yield event.wait(0.02)
        no_wait = yield event.wait(0)
        event.set()
        already = yield event.wait()
        event.clear()
        return timed_out, no_wait, already, event.is_set()

    async def async_body(coro=None):
        timed_out = await event.wait(timeout=0.02)
        event.set()
        already = await event.wait(timeout=0)
        event.clear()
        return timed_out, False, already, event.isSet()

    assert run(gen_body) == (False, False, True, False)
    assert run(async_body) == (False, False, True, False)


def test_event_terminated_waiter() -> None:
    event = Event()

    def waiter(main, coro=None):
        main.send("waiting")
        yield event.wait()

    async def main(coro=None):
        w = Coro(waiter, coro)
        await coro.receive()
        w.terminate()
        await w.finish()
        return len(event._waiters)

    assert run(main) == 0


# -- Semaphore --------------------------------------------------------------------------------


def test_semaphore_counts_generator() -> None:
    sem = Semaphore(2)

    def body(coro=None):
        a = yield sem.acquire()
        b = yield sem.acquire()
        c = yield sem.acquire(blocking=False)
        d = yield sem.acquire(timeout=0.02)
        sem.release()
        e = yield sem.acquire(False)
        sem.release()
        sem.release()
        return a, b, c, d, e, sem.value

    assert run(body) == (True, True, False, False, True, 2)


def test_semaphore_counts_async() -> None:
    sem = Semaphore()

    async def body(coro=None):
        async with sem:
            inside = await sem.acquire(blocking=False)
        return inside, sem.value

    assert run(body) == (False, 1)


def test_semaphore_bad_value() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        Semaphore(-1)


@pytest.mark.parametrize("style", ["generator", "async"])
def test_semaphore_fifo(style: str) -> None:
    sem = Semaphore(0)
    order: list[int] = []

    def gen_waiter(i, main, coro=None):
        main.send(i)
        yield sem.acquire()
        order.append(i)

    async def async_waiter(i, main, coro=None):
        main.send(i)
        await sem.acquire()
        order.append(i)

    waiter = gen_waiter if style == "generator" else async_waiter

    async def main(coro=None):
        waiters = []
        for i in range(3):
            waiters.append(Coro(waiter, i, coro))
            await coro.receive()
        for _ in range(3):
            sem.release()
        overtaken = await sem.acquire(blocking=False)  # all three units were handed over
        for w in waiters:
            await w.finish()
        return overtaken

    assert run(main) is False
    assert order == [0, 1, 2]
    assert sem.value == 0


@pytest.mark.parametrize("style", ["generator", "async"])
def test_semaphore_unit_handed_to_terminated_waiter_is_not_lost(style: str) -> None:
    sem = Semaphore(0)

    def gen_waiter(main, coro=None):
        main.send("waiting")
        yield sem.acquire()

    async def async_waiter(main, coro=None):
        main.send("waiting")
        await sem.acquire()

    waiter = gen_waiter if style == "generator" else async_waiter

    async def main(coro=None):
        w = Coro(waiter, coro)
        await coro.receive()
        sem.release()  # handed to w ...
        w.terminate()  # ... which never takes it
        await w.finish()
        return sem.value, len(sem._waiters)

    assert run(main) == (1, 0)
