"""The thread-safe entry points (reference 1.1, DESIGN decision 1): ``Coro()``, ``send``,
``resume``, ``throw``, ``terminate`` and ``value()`` called from many threads at once."""

from __future__ import annotations

import gc
import queue
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from discoro import AsynCoro, Coro
from discoro.errors import WrongThreadError

TIMEOUT = 10
THREADS = 8


def run_in_threads(func, n=THREADS):
    """Run ``func(i)`` in ``n`` threads that start together; return the results in order."""
    barrier = threading.Barrier(n)

    def start(i):
        barrier.wait(TIMEOUT)
        return func(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(start, range(n), timeout=3 * TIMEOUT))


def gather(total, coro=None):
    got = []
    for _ in range(total):
        got.append((yield coro.receive()))
    return got


async def async_gather(total, coro=None):
    return [await coro.receive() for _ in range(total)]


@pytest.mark.parametrize("target", [gather, async_gather], ids=["gen", "async"])
def test_sends_from_many_threads_all_arrive_in_per_thread_order(target):
    per_thread = 1000
    c = Coro(target, THREADS * per_thread)

    def sender(i):
        return sum(c.send((i, n)) for n in range(per_thread))

    assert run_in_threads(sender) == [0] * THREADS
    got = c.value(TIMEOUT)
    assert len(got) == THREADS * per_thread
    assert sorted(got) == [(i, n) for i in range(THREADS) for n in range(per_thread)]
    for i in range(THREADS):
        assert [n for t, n in got if t == i] == list(range(per_thread))


def square(x, coro=None):
    yield
    return x * x


async def async_square(x, coro=None):
    return x * x


def test_coroutines_created_from_many_threads():
    per_thread = 50

    def create(i):
        coros = [
            Coro(square if n % 2 else async_square, i * per_thread + n) for n in range(per_thread)
        ]
        return coros, [c.value(TIMEOUT) for c in coros]

    results = run_in_threads(create)
    all_coros = [c for coros, _ in results for c in coros]
    assert len({str(c) for c in all_coros}) == THREADS * per_thread
    values = sorted(v for _, vs in results for v in vs)
    assert values == sorted(x * x for x in range(THREADS * per_thread))


def test_value_from_several_threads():
    signals: queue.Queue = queue.Queue()

    def target(coro=None):
        signals.put("ready")
        message = yield coro.receive()
        return ("final", message)

    c = Coro(target)
    assert signals.get(timeout=TIMEOUT) == "ready"
    release = threading.Barrier(THREADS + 1)

    def wait_for_value(i):
        release.wait(TIMEOUT)
        return c.value(TIMEOUT)

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(wait_for_value, i) for i in range(THREADS)]
        release.wait(TIMEOUT)
        c.send("released")
        values = [f.result(3 * TIMEOUT) for f in futures]
    assert values == [("final", "released")] * THREADS
    assert c.value() == ("final", "released")  # once ended, no timeout needed


def test_value_timeout_gives_none_and_the_coroutine_goes_on():
    # later-versions 7 / D7: value(timeout) is None when the coroutine has not ended
    signals: queue.Queue = queue.Queue()

    def target(coro=None):
        signals.put("ready")
        return (yield coro.receive())

    c = Coro(target)
    assert signals.get(timeout=TIMEOUT) == "ready"
    assert c.value(0.01) is None and c.is_alive()
    c.send("later")
    assert c.value(TIMEOUT) == "later"


def value_caller(target, coro=None):
    try:
        target.value()
    except WrongThreadError as exc:
        return ("refused", str(exc))
    yield
    return "not refused"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore:coroutine 'Coro.finish' was never awaited")
def test_value_inside_a_coroutine_is_refused():
    o = Coro(gather, 1)
    result = Coro(value_caller, o).value(TIMEOUT)
    assert result[0] == "refused"
    assert "loop thread" in result[1]
    o.send(None)
    o.value(TIMEOUT)


def test_value_refused_inside_a_coroutine_leaves_nothing_unawaited():
    o = Coro(gather, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Coro(value_caller, o).value(TIMEOUT)
        gc.collect()
    o.send(None)
    o.value(TIMEOUT)
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


def resumable(rounds, signals, coro=None):
    got = []
    for _ in range(rounds):
        signals.put("sleeping")
        got.append((yield coro.sleep()))
    return got


async def async_resumable(rounds, signals, coro=None):
    got = []
    for _ in range(rounds):
        signals.put("sleeping")
        got.append(await coro.sleep())
    return got


def test_resume_from_many_threads():
    rounds = 100

    def drive(i):
        signals: queue.Queue = queue.Queue()
        c = Coro(resumable if i % 2 else async_resumable, rounds, signals)
        for n in range(rounds):
            assert signals.get(timeout=TIMEOUT) == "sleeping"
            assert c.resume((i, n)) == 0
        return c.value(TIMEOUT)

    for i, got in enumerate(run_in_threads(drive)):
        assert got == [(i, n) for n in range(rounds)]


class Ping(Exception):
    pass


def catcher(rounds, signals, coro=None):
    caught = []
    for _ in range(rounds):
        signals.put("receiving")
        try:
            yield coro.receive()
        except Ping as exc:
            caught.append(exc.args[0])
    return caught


async def async_catcher(rounds, signals, coro=None):
    caught = []
    for _ in range(rounds):
        signals.put("receiving")
        try:
            await coro.receive()
        except Ping as exc:
            caught.append(exc.args[0])
    return caught


def test_throw_from_many_threads():
    rounds = 100

    def drive(i):
        signals: queue.Queue = queue.Queue()
        c = Coro(catcher if i % 2 else async_catcher, rounds, signals)
        for n in range(rounds):
            assert signals.get(timeout=TIMEOUT) == "receiving"
            assert c.throw(Ping, n) == 0
        return c.value(TIMEOUT)

    for got in run_in_threads(drive):
        assert got == list(range(rounds))


def test_terminate_from_many_threads():
    closed: queue.Queue = queue.Queue()

    def blocked(signals, coro=None):
        try:
            signals.put("ready")
            yield coro.receive()
        finally:
            closed.put(coro)

    async def async_blocked(signals, coro=None):
        try:
            signals.put("ready")
            await coro.receive()
        finally:
            closed.put(coro)

    def drive(i):
        signals: queue.Queue = queue.Queue()
        coros = [Coro(blocked if n % 2 else async_blocked, signals) for n in range(20)]
        for _ in coros:
            assert signals.get(timeout=TIMEOUT) == "ready"
        assert [c.terminate() for c in coros] == [0] * len(coros)
        for c in coros:
            c.value(TIMEOUT)
        return coros

    coros = [c for group in run_in_threads(drive) for c in group]
    assert {closed.get_nowait() for _ in coros} == set(coros)


def test_mixed_operations_from_many_threads():
    """Senders and resumers (ignored: the receiver never sleeps) on one coroutine while other
    threads create, throw into and terminate coroutines of their own."""
    per_thread = 200
    senders = 3
    c = Coro(gather, senders * per_thread)

    def blocked(signals, coro=None):
        try:
            signals.put("ready")
            yield coro.receive()
        except Ping:
            return "pinged"

    def work(i):
        if i < senders:
            return [c.send((i, n)) for n in range(per_thread)]
        if i < senders + 2:
            return [c.resume(n) for n in range(per_thread)]
        signals: queue.Queue = queue.Queue()
        others = [Coro(blocked, signals) for _ in range(20)]
        for _ in others:
            assert signals.get(timeout=TIMEOUT) == "ready"
        for n, other in enumerate(others):
            if n % 2:
                other.throw(Ping)
            else:
                other.terminate()
        return [other.value(TIMEOUT) for other in others]

    results = run_in_threads(work)
    got = c.value(TIMEOUT)
    for i in range(senders):
        assert results[i] == [0] * per_thread
        assert [n for t, n in got if t == i] == list(range(per_thread))
    for values in results[senders + 2 :]:
        assert values[1::2] == ["pinged"] * 10


def test_cur_coro_from_threads_is_none():
    assert run_in_threads(lambda i: AsynCoro.cur_coro()) == [None] * THREADS
