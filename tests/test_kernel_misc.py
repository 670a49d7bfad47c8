"""Kernel odds and ends (reference 1.1, 1.14): `MetaSingleton`, ``AsynCoro()`` as a
singleton, ``cur_coro()``, the package logger and ``serialize``/``unserialize``."""

from __future__ import annotations

import logging
import pickle
import threading

import discoro
from discoro import AsynCoro, Coro, MetaSingleton, logger, serialize, unserialize

TIMEOUT = 10


# -- MetaSingleton ------------------------------------------------------------------------


def test_meta_singleton_first_construction_wins():
    class Single(metaclass=MetaSingleton):
        def __init__(self, value):
            self.value = value

    first = Single(1)
    second = Single(2)
    assert first is second
    assert second.value == 1


def test_meta_singleton_classes_are_independent():
    class A(metaclass=MetaSingleton):
        pass

    class B(metaclass=MetaSingleton):
        pass

    assert A() is A()
    assert A() is not B()
    assert type(B()) is B


def test_meta_singleton_construction_from_many_threads():
    calls = []

    class Slow(metaclass=MetaSingleton):
        def __init__(self, tag):
            calls.append(tag)
            self.tag = tag

    barrier = threading.Barrier(8)
    made = []

    def build(i):
        barrier.wait(TIMEOUT)
        made.append(Slow(i))

    threads = [threading.Thread(target=build, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert len(calls) == 1
    assert len(made) == 8
    assert all(m is made[0] for m in made)


# -- AsynCoro as a singleton --------------------------------------------------------------


def test_asyncoro_is_one_per_process():
    def gen(coro=None):
        yield
        return AsynCoro.instance()

    kernel = AsynCoro()
    assert AsynCoro() is kernel
    assert AsynCoro.instance() is kernel
    assert Coro(gen).value(TIMEOUT) is kernel


def test_the_kernel_runs_in_a_daemon_thread():
    def gen(coro=None):
        yield
        return threading.current_thread()

    thread = Coro(gen).value(TIMEOUT)
    assert thread is not threading.main_thread()
    assert thread.daemon
    assert AsynCoro.instance().on_loop_thread() is False


# -- cur_coro -----------------------------------------------------------------------------


def test_cur_coro_inside_and_outside_coroutines():
    def callee(coro):
        yield
        return AsynCoro.cur_coro()

    def gen(coro=None):
        before = AsynCoro.cur_coro()
        nested = yield callee(coro)
        return before, nested

    async def afunc(coro=None):
        return AsynCoro.cur_coro(), AsynCoro.cur_coro()

    assert AsynCoro.cur_coro() is None
    for target in (gen, afunc):
        c = Coro(target)
        assert c.value(TIMEOUT) == (c, c)
    assert AsynCoro.cur_coro() is None


def test_cur_coro_tells_coroutines_apart():
    def gen(coro=None):
        seen = []
        for _ in range(3):
            seen.append(AsynCoro.cur_coro() is coro)
            yield
        return seen

    coros = [Coro(gen) for _ in range(5)]
    assert [c.value(TIMEOUT) for c in coros] == [[True] * 3] * 5


# -- logger -------------------------------------------------------------------------------


def test_logger():
    assert logger is logging.getLogger("discoro")
    assert logger is discoro.logger
    assert logger.level == logging.INFO
    assert logger.propagate  # the library convention; handlers: tests/test_logging.py


def test_logger_level_can_be_changed():
    before = logger.level
    try:
        logger.setLevel(logging.DEBUG)
        assert logger.isEnabledFor(logging.DEBUG)
    finally:
        logger.setLevel(before)
    assert not logger.isEnabledFor(logging.DEBUG)


# -- serialize / unserialize --------------------------------------------------------------


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None


def test_serialize_round_trip():
    objects = [None, 1, 2.5, "text", b"bytes", (1, [2, {"three": 3}]), {1, 2}, Point(1, 2)]
    for obj in objects:
        data = serialize(obj)
        assert isinstance(data, bytes)
        assert unserialize(data) == obj


def test_serialize_is_pickle_at_the_highest_protocol():
    obj = {"k": [1, 2, 3]}
    assert serialize(obj) == pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    assert unserialize(pickle.dumps(obj, protocol=2)) == obj
