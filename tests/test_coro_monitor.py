"""Monitors (reference 1.5, 1.6): ``monitor`` / ``notify`` and the `MonitorException`
message layout for a normal end, an exception and ``terminate()``, in both styles."""

from __future__ import annotations

import queue
import types

import pytest

from discoro import Coro, MonitorException

TIMEOUT = 10


def watch(observed, box, coro=None):
    """Monitor ``observed``; put the first message received, then check nothing else came."""
    assert (yield coro.monitor(observed)) == 0
    box.put((yield coro.receive()))
    box.put((yield coro.receive(timeout=0, alarm_value="nothing more")))


async def async_watch(observed, box, coro=None):
    assert await coro.monitor(observed) == 0
    box.put(await coro.receive())
    box.put(await coro.receive(timeout=0, alarm_value="nothing more"))


WATCHERS = pytest.mark.parametrize("watcher", [watch, async_watch], ids=["gen-mon", "async-mon"])


def gen_ends(signals, coro=None):
    signals.put("ready")
    message = yield coro.receive()
    if isinstance(message, BaseException):
        raise message
    return ("normal", message)


async def async_ends(signals, coro=None):
    signals.put("ready")
    message = await coro.receive()
    if isinstance(message, BaseException):
        raise message
    return ("normal", message)


OBSERVED = pytest.mark.parametrize("observed", [gen_ends, async_ends], ids=["gen", "async"])


def start(observed_target, watcher):
    """Start the observed coroutine and its monitor; return (observed, box, watcher coro)."""
    signals: queue.Queue = queue.Queue()
    box: queue.Queue = queue.Queue()
    observed = Coro(observed_target, signals)
    assert signals.get(timeout=TIMEOUT) == "ready"
    w = Coro(watcher, observed, box)
    return observed, box, w


def monitor_messages(box, w):
    w.value(TIMEOUT)
    first = box.get_nowait()
    assert box.get_nowait() == "nothing more"  # exactly one MonitorException
    assert isinstance(first, MonitorException)
    return first


def sync_point(w):
    """Make sure the watcher's first step (its monitor() call) has run: a coroutine created
    after it takes its first step after it, so once that one has ended, so has the step."""

    def probe(coro=None):
        yield

    Coro(probe).value(TIMEOUT)


@WATCHERS
@OBSERVED
def test_normal_end(observed, watcher):
    c, box, w = start(observed, watcher)
    sync_point(w)
    c.send("bye")
    exc = monitor_messages(box, w)
    assert exc.args[0] is c
    assert exc.args[1] == (StopIteration, ("normal", "bye"))


@WATCHERS
@OBSERVED
def test_exception_end_gives_type_value_traceback(observed, watcher):
    c, box, w = start(observed, watcher)
    sync_point(w)
    error = KeyError("boom")
    c.send(error)
    exc = monitor_messages(box, w)
    assert exc.args[0] is c
    info = exc.args[1]
    assert len(info) == 3
    assert info[0] is KeyError
    assert info[1] is error
    assert isinstance(info[2], types.TracebackType)
    frames = []
    tb = info[2]
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert observed.__name__ in frames


@WATCHERS
@OBSERVED
def test_terminate_is_reported_as_a_normal_end(observed, watcher):
    c, box, w = start(observed, watcher)
    sync_point(w)
    assert c.terminate() == 0
    exc = monitor_messages(box, w)
    assert exc.args[0] is c
    assert exc.args[1][0] is StopIteration


def test_terminate_reports_the_last_received_value():
    signals: queue.Queue = queue.Queue()
    box: queue.Queue = queue.Queue()

    def gen(coro=None):
        yield coro.receive()
        signals.put("got the first message")
        yield coro.receive()

    c = Coro(gen)
    w = Coro(watch, c, box)
    c.send("first")
    assert signals.get(timeout=TIMEOUT) == "got the first message"
    c.terminate()
    exc = monitor_messages(box, w)
    assert exc.args[1] == (StopIteration, "first")
    assert c.value(TIMEOUT) == "first"


@WATCHERS
@pytest.mark.parametrize("how", ["normal", "exception"])
def test_monitor_of_an_already_finished_coroutine(watcher, how):
    def gen(coro=None):
        yield
        if how == "exception":
            raise ValueError("already dead")
        return "already done"

    c = Coro(gen)
    c.value(TIMEOUT)
    box: queue.Queue = queue.Queue()
    exc = monitor_messages(box, Coro(watcher, c, box))
    assert exc.args[0] is c
    if how == "normal":
        assert exc.args[1] == (StopIteration, "already done")
    else:
        assert exc.args[1][0] is ValueError
        assert str(exc.args[1][1]) == "already dead"
        assert isinstance(exc.args[1][2], types.TracebackType)


@OBSERVED
def test_notify_from_a_thread_and_several_monitors(observed):
    signals: queue.Queue = queue.Queue()
    c = Coro(observed, signals)
    assert signals.get(timeout=TIMEOUT) == "ready"
    boxes = []
    watchers = []

    def plain_watcher(box, coro=None):
        box.put((yield coro.receive()))
        box.put((yield coro.receive(timeout=0, alarm_value="nothing more")))

    for _ in range(3):
        box: queue.Queue = queue.Queue()
        w = Coro(plain_watcher, box)
        assert c.notify(w) == 0
        assert c.notify(w) == 0  # the same monitor twice: still one message
        boxes.append(box)
        watchers.append(w)
    c.send("end")
    for box, w in zip(boxes, watchers, strict=True):
        exc = monitor_messages(box, w)
        assert exc.args[0] is c
        assert exc.args[1] == (StopIteration, ("normal", "end"))


def test_monitor_exception_is_a_message_not_raised():
    def observed(coro=None):
        yield

    def watcher(target, coro=None):
        yield coro.monitor(target)
        got = yield coro.receive()
        return type(got).__name__, isinstance(got, Exception)

    c = Coro(observed)
    assert Coro(watcher, c).value(TIMEOUT) == ("MonitorException", True)


def test_monitor_needs_a_coroutine():
    def watcher(coro=None):
        try:
            yield coro.monitor("not a coroutine")
        except TypeError as exc:
            return str(exc)

    assert "not a coroutine" in Coro(watcher).value(TIMEOUT)


def test_monitor_sees_an_exception_from_a_nested_call_and_from_throw():
    signals: queue.Queue = queue.Queue()

    def inner(coro):
        signals.put("ready")
        yield coro.receive()

    def outer(coro=None):
        yield inner(coro)

    c = Coro(outer)
    box: queue.Queue = queue.Queue()
    w = Coro(watch, c, box)
    assert signals.get(timeout=TIMEOUT) == "ready"
    sync_point(w)
    c.throw(OSError, "thrown in")
    exc = monitor_messages(box, w)
    assert exc.args[1][0] is OSError
    assert exc.args[1][1].args == ("thrown in",)
