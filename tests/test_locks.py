"""Lock and RLock (reference 1.9), in both coroutine styles: generator ``yield`` and
``async def`` ``await``."""

from __future__ import annotations

from typing import Any

import pytest

from discoro.core.coro import Coro
from discoro.core.locks import Lock, RLock
from testing import wait_all_blocked


def run(target: Any, *args: Any) -> Any:
    return Coro(target, *args).value(timeout=5)


# -- acquire / release ------------------------------------------------------------------------


def test_acquire_release_generator() -> None:
    lock = Lock()

    def body(coro=None):
        got = yield lock.acquire()
        held = lock.locked()
        lock.release()
        return got, held, lock.locked()

    assert run(body) == (True, True, False)


def test_acquire_release_async() -> None:
    lock = Lock()

    async def body(coro=None):
        got = await lock.acquire()
        held = lock.locked()
        lock.release()
        return got, held, lock.locked()

    assert run(body) == (True, True, False)


def test_async_with() -> None:
    lock = RLock()

    async def body(coro=None):
        async with lock:
            inside = lock.locked()
        return inside, lock.locked()

    assert run(body) == (True, False)


def _hold_and_probe_generator(lock: Lock, probe: Any) -> Any:
    """Hold ``lock`` in one coroutine while ``probe`` (a generator function) tries it."""

    def holder(coro=None):
        yield lock.acquire()
        result = yield Coro(probe).finish()
        lock.release()
        return result

    return run(holder)


def _hold_and_probe_async(lock: Lock, probe: Any) -> Any:
    async def holder(coro=None):
        await lock.acquire()
        result = await Coro(probe).finish()
        lock.release()
        return result

    return run(holder)


def test_nonblocking_and_timeout_generator() -> None:
    lock = Lock()

    def probe(coro=None):
        a = yield lock.acquire(blocking=False)
        b = yield lock.acquire(timeout=0)
        c = yield lock.acquire(timeout=0.05)
        return a, b, c

    assert _hold_and_probe_generator(lock, probe) == (False, False, False)
    assert not lock.locked()
    assert len(lock._waiters) == 0


def test_nonblocking_and_timeout_async() -> None:
    lock = Lock()

    async def probe(coro=None):
        a = await lock.acquire(blocking=False)
        b = await lock.acquire(timeout=0)
        c = await lock.acquire(timeout=0.05)
        return a, b, c

    assert _hold_and_probe_async(lock, probe) == (False, False, False)
    assert not lock.locked()
    assert len(lock._waiters) == 0


# -- FIFO -------------------------------------------------------------------------------------


def test_fifo_wakeup_and_no_overtaking_generator() -> None:
    lock = Lock()
    order: list[int] = []

    def waiter(i, main, coro=None):
        main.send(i)  # the holder runs only after this coroutine is queued on the lock
        yield lock.acquire()
        order.append(i)
        lock.release()

    def holder(coro=None):
        yield lock.acquire()
        waiters = []
        for i in range(4):
            waiters.append(Coro(waiter, i, coro))
            assert (yield coro.receive()) == i
        lock.release()
        overtaken = yield lock.acquire(blocking=False)  # handed to waiter 0, not free
        for w in waiters:
            yield w.finish()
        return overtaken

    assert run(holder) is False
    assert order == [0, 1, 2, 3]
    assert not lock.locked()


def test_fifo_wakeup_and_no_overtaking_async() -> None:
    lock = Lock()
    order: list[int] = []

    async def waiter(i, main, coro=None):
        main.send(i)
        await lock.acquire()
        order.append(i)
        lock.release()

    async def holder(coro=None):
        await lock.acquire()
        waiters = []
        for i in range(4):
            waiters.append(Coro(waiter, i, coro))
            assert await coro.receive() == i
        lock.release()
        overtaken = await lock.acquire(blocking=False)
        for w in waiters:
            await w.finish()
        return overtaken

    assert run(holder) is False
    assert order == [0, 1, 2, 3]
    assert not lock.locked()


# -- ownership errors -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [Lock, RLock])
def test_release_errors_generator(kind: type[Lock]) -> None:
    lock = kind()

    def stranger(coro=None):
        try:
            lock.release()
        except RuntimeError as exc:
            return str(exc)
        yield

    def body(coro=None):
        errors = []
        try:
            lock.release()
        except RuntimeError:
            errors.append("unlocked")
        yield lock.acquire()
        errors.append((yield Coro(stranger).finish()))
        lock.release()
        return errors

    errors = run(body)
    assert errors[0] == "unlocked"
    assert "owned by" in errors[1]
    assert not lock.locked()


@pytest.mark.parametrize("kind", [Lock, RLock])
def test_release_errors_async(kind: type[Lock]) -> None:
    lock = kind()

    async def stranger(coro=None):
        try:
            lock.release()
        except RuntimeError:
            return "refused"
        return "released"

    async def body(coro=None):
        with pytest.raises(RuntimeError):
            lock.release()
        await lock.acquire()
        result = await Coro(stranger).finish()
        lock.release()
        return result

    assert run(body) == "refused"
    assert not lock.locked()


def test_lock_reacquire_by_owner() -> None:
    lock = Lock()

    def gen_body(coro=None):
        yield lock.acquire()
        again = yield lock.acquire(timeout=0.01)
        try:
            yield lock.acquire()
        except RuntimeError:
            deadlock = "refused"
        lock.release()
        return again, deadlock

    async def async_body(coro=None):
        await lock.acquire()
        again = await lock.acquire(blocking=False)
        with pytest.raises(RuntimeError, match="deadlock"):
            await lock.acquire()
        lock.release()
        return again, "refused"

    assert run(gen_body) == (False, "refused")
    assert run(async_body) == (False, "refused")
    assert not lock.locked()


# -- RLock ------------------------------------------------------------------------------------


def test_rlock_depth_generator() -> None:
    lock = RLock()

    def other(coro=None):
        got = yield lock.acquire(blocking=False)
        if got:
            lock.release()
        return got

    def body(coro=None):
        for _ in range(3):
            assert (yield lock.acquire())
        lock.release()
        lock.release()
        still = lock.locked()
        blocked = yield Coro(other).finish()
        lock.release()
        free = yield Coro(other).finish()
        return still, blocked, free

    assert run(body) == (True, False, True)
    assert not lock.locked()


def test_rlock_depth_async() -> None:
    lock = RLock()
    events: list[str] = []

    async def other(main, coro=None):
        main.send("queued")
        await lock.acquire()
        events.append("other")
        lock.release()

    async def body(coro=None):
        await lock.acquire()
        await lock.acquire()
        waiter = Coro(other, coro)
        await coro.receive()
        lock.release()
        events.append("released once")
        await wait_all_blocked()  # everything that can run has run: the waiter did not
        still_waiting = list(events)
        lock.release()
        await waiter.finish()
        return still_waiting

    assert run(body) == ["released once"]
    assert events == ["released once", "other"]
    assert not lock.locked()


# -- interrupted waiters ----------------------------------------------------------------------


def test_terminated_waiter_is_removed_generator() -> None:
    lock = Lock()

    def waiter(main, coro=None):
        main.send("queued")
        yield lock.acquire()
        return "acquired"

    def body(coro=None):
        yield lock.acquire()
        w = Coro(waiter, coro)
        yield coro.receive()
        queued = len(lock._waiters)
        w.terminate()
        result = yield w.finish()
        left = len(lock._waiters)
        lock.release()
        usable = yield lock.acquire(blocking=False)
        lock.release()
        return queued, result, left, usable

    assert run(body) == (1, None, 0, True)
    assert not lock.locked()


def test_terminated_waiter_is_removed_async() -> None:
    lock = Lock()

    async def waiter(main, coro=None):
        main.send("queued")
        await lock.acquire()
        return "acquired"

    async def body(coro=None):
        await lock.acquire()
        w = Coro(waiter, coro)
        await coro.receive()
        queued = len(lock._waiters)
        w.terminate()
        result = await w.finish()
        left = len(lock._waiters)
        lock.release()
        usable = await lock.acquire(blocking=False)
        lock.release()
        return queued, result, left, usable

    assert run(body) == (1, None, 0, True)
    assert not lock.locked()


def test_thrown_waiter_gets_exception_generator() -> None:
    lock = Lock()

    def waiter(main, coro=None):
        main.send("queued")
        try:
            yield lock.acquire()
        except KeyError:
            return "thrown", lock.locked()
        return "acquired", None

    def body(coro=None):
        yield lock.acquire()
        w = Coro(waiter, coro)
        yield coro.receive()
        w.throw(KeyError("x"))
        result = yield w.finish()
        lock.release()
        return result, len(lock._waiters)

    assert run(body) == (("thrown", True), 0)
    assert not lock.locked()


def test_thrown_waiter_gets_exception_async() -> None:
    lock = Lock()

    async def waiter(main, coro=None):
        main.send("queued")
        try:
            await lock.acquire()
        except KeyError:
            return "thrown"
        lock.release()
        return "acquired"

    async def body(coro=None):
        await lock.acquire()
        w = Coro(waiter, coro)
        await coro.receive()
        w.throw(KeyError("x"))
        await wait_all_blocked()  # the waiter has taken the throw (and ended)
        lock.release()
        return await w.finish()

    assert run(body) == "thrown"


@pytest.mark.parametrize("style", ["generator", "async"])
def test_lock_handed_to_terminated_waiter_passes_on(style: str) -> None:
    """The holder hands the lock to A and terminates A before A runs: B gets it."""
    lock = Lock()
    got: list[str] = []

    def gen_waiter(name, main, coro=None):
        main.send(name)
        yield lock.acquire()
        got.append(name)
        lock.release()

    async def async_waiter(name, main, coro=None):
        main.send(name)
        await lock.acquire()
        got.append(name)
        lock.release()

    waiter = gen_waiter if style == "generator" else async_waiter

    async def holder(coro=None):
        await lock.acquire()
        a = Coro(waiter, "a", coro)
        await coro.receive()
        b = Coro(waiter, "b", coro)
        await coro.receive()
        lock.release()  # handed to a ...
        a.terminate()  # ... which is terminated before it runs
        await a.finish()
        await b.finish()

    run(holder)
    assert got == ["b"]
    assert not lock.locked()
