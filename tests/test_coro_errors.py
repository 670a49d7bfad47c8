"""Failures inside coroutines: an uncaught exception with no monitor is logged with its
traceback on the ``discoro`` logger, ends only that coroutine, and ``value()`` still returns."""

from __future__ import annotations

import logging
import queue
import threading

import pytest

from discoro import Coro, logger

TIMEOUT = 10


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def log_records():
    """What the ``discoro`` logger emits."""
    handler = ListHandler()
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def formatted(records):
    formatter = logging.Formatter("%(message)s")
    return [(r.levelno, formatter.format(r)) for r in records]


def failing_helper(text):
    raise ZeroDivisionError(text)


def gen_fails(text, coro=None):
    yield
    failing_helper(text)


async def async_fails(text, coro=None):
    failing_helper(text)


def wait_for_end(c):
    """Wait until ``c`` has ended completely: a finish() on the loop thread is woken only
    after the end processing (logging, monitors) is done."""

    def waiter(coro=None):
        yield c.finish()

    Coro(waiter).value(TIMEOUT)


@pytest.mark.parametrize("target", [gen_fails, async_fails], ids=["gen", "async"])
def test_uncaught_exception_without_monitor_is_logged_with_traceback(log_records, target):
    c = Coro(target, "unique failure text 7d1f")
    wait_for_end(c)
    assert c.value(TIMEOUT) is None  # value() returns; it does not hang or raise
    texts = [(level, text) for level, text in formatted(log_records) if "7d1f" in text]
    assert len(texts) == 1, formatted(log_records)
    level, text = texts[0]
    assert level >= logging.WARNING
    assert str(c) in text
    assert "Traceback" in text
    assert "ZeroDivisionError: unique failure text 7d1f" in text
    assert "failing_helper" in text
    assert target.__name__ in text


def test_exception_in_a_nested_callee_is_logged_with_the_callee_frame(log_records):
    def callee(coro):
        yield
        raise KeyError("callee failure 93ab")

    def caller(coro=None):
        yield callee(coro)

    wait_for_end(Coro(caller))
    texts = [text for _, text in formatted(log_records) if "93ab" in text]
    assert len(texts) == 1
    assert "callee" in texts[0]
    assert "KeyError" in texts[0]


def test_a_failing_coroutine_does_not_disturb_the_others():
    signals: queue.Queue = queue.Queue()

    def survivor(coro=None):
        signals.put("ready")
        return (yield coro.receive())

    s = Coro(survivor)
    assert signals.get(timeout=TIMEOUT) == "ready"
    for target in (gen_fails, async_fails) * 3:
        Coro(target, "expected failure").value(TIMEOUT)
    s.send("still alive")
    assert s.value(TIMEOUT) == "still alive"


def test_exception_raised_at_a_plain_yield_is_catchable_and_the_coroutine_goes_on():
    def gen(coro=None):
        results = []
        for i in range(3):
            try:
                yield i
                failing_helper("x")
            except ZeroDivisionError:
                results.append(i)
        return results

    assert Coro(gen).value(TIMEOUT) == [0, 1, 2]


def test_value_returns_only_once_the_end_has_been_processed():
    in_handler, release = threading.Event(), threading.Event()

    class Blocking(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "end in progress 5c2e" in record.getMessage():
                in_handler.set()
                release.wait(TIMEOUT)

    handler = Blocking()
    logger.addHandler(handler)
    try:
        c = Coro(gen_fails, "end in progress 5c2e")
        assert in_handler.wait(TIMEOUT)
        # the loop is now inside the coroutine's end processing, held by the handler: a
        # thread waiting in value() must not return until it is done
        returned = threading.Event()
        threading.Thread(target=lambda: (c.value(TIMEOUT), returned.set()), daemon=True).start()
        assert not returned.wait(0.2)
    finally:
        release.set()
        logger.removeHandler(handler)
    assert returned.wait(TIMEOUT)
    wait_for_end(c)
