"""``terminate()`` (reference 1.5): of a blocked, sleeping, ready or nested-call coroutine,
from a thread, another coroutine or itself, and right after construction, in both styles;
monitors see a normal finish (see test_coro_monitor.py)."""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import textwrap

import pytest

from discoro import Coro

TIMEOUT = 10


# -- terminate ----------------------------------------------------------------------------


def receive_forever(signals, trail, coro=None):
    try:
        signals.put("ready")
        yield coro.receive()
    finally:
        trail.append("closed")


async def async_receive_forever(signals, trail, coro=None):
    try:
        signals.put("ready")
        await coro.receive()
    finally:
        trail.append("closed")


def sleep_forever(signals, trail, coro=None):
    try:
        signals.put("ready")
        yield coro.sleep()
    finally:
        trail.append("closed")


async def async_sleep_forever(signals, trail, coro=None):
    try:
        signals.put("ready")
        await coro.sleep()
    finally:
        trail.append("closed")


def busy(signals, trail, coro=None):
    try:
        signals.put("ready")
        i = 0
        while True:
            i = yield i + 1  # always ready: a plain value is a switch point
    finally:
        trail.append("closed")


async def async_busy(signals, trail, coro=None):
    try:
        signals.put("ready")
        while True:  # noqa: ASYNC110 - always ready, on purpose
            await asyncio.sleep(0)
    finally:
        trail.append("closed")


def in_asyncio_sleep(signals, trail, coro=None):
    try:
        signals.put("ready")
        yield asyncio.sleep(3600)
    finally:
        trail.append("closed")


async def async_in_asyncio_sleep(signals, trail, coro=None):
    try:
        signals.put("ready")
        await asyncio.sleep(3600)
    finally:
        trail.append("closed")


@pytest.mark.parametrize(
    "target",
    [
        receive_forever,
        async_receive_forever,
        sleep_forever,
        async_sleep_forever,
        busy,
        async_busy,
        in_asyncio_sleep,
        async_in_asyncio_sleep,
    ],
)
def test_terminate(target):
    signals: queue.Queue = queue.Queue()
    trail: list[str] = []
    c = Coro(target, signals, trail)
    assert signals.get(timeout=TIMEOUT) == "ready"
    assert c.terminate() == 0
    c.value(TIMEOUT)
    assert trail == ["closed"]
    assert c.terminate() == -1  # already ended
    assert c.send("late") == -1


def test_terminate_of_a_coroutine_blocked_in_a_nested_call_closes_every_level():
    signals: queue.Queue = queue.Queue()
    trail: list[str] = []

    def inner(coro):
        try:
            signals.put("ready")
            yield coro.receive()
        finally:
            trail.append("inner")

    def middle(coro):
        try:
            yield inner(coro)
        finally:
            trail.append("middle")

    def outer(coro=None):
        try:
            yield "outer's last value"
            yield middle(coro)
        finally:
            trail.append("outer")

    c = Coro(outer)
    assert signals.get(timeout=TIMEOUT) == "ready"
    c.terminate()
    assert c.value(TIMEOUT) == "outer's last value"
    assert sorted(trail) == ["inner", "middle", "outer"]


def test_terminate_unwinds_nested_calls_innermost_first():
    signals: queue.Queue = queue.Queue()
    trail: list[str] = []

    def inner(coro):
        try:
            signals.put("ready")
            yield coro.receive()
        finally:
            trail.append("inner")

    def middle(coro):
        try:
            yield inner(coro)
        finally:
            trail.append("middle")

    def outer(coro=None):
        try:
            yield middle(coro)
        finally:
            trail.append("outer")

    c = Coro(outer)
    assert signals.get(timeout=TIMEOUT) == "ready"
    c.terminate()
    c.value(TIMEOUT)
    assert trail == ["inner", "middle", "outer"]


def self_terminate(coro=None):
    coro.terminate()
    yield coro.receive()
    return "still running after terminate()"


async def async_self_terminate(coro=None):
    coro.terminate()
    await coro.receive()
    return "still running after terminate()"


@pytest.mark.parametrize("target", [self_terminate, async_self_terminate], ids=["gen", "async"])
def test_a_coroutine_can_terminate_itself(target):
    c = Coro(target)
    try:
        assert c.value(0.5) != "still running after terminate()"
    finally:
        c.send("unblock")
        c.value(TIMEOUT)


def test_terminate_from_another_coroutine():
    signals: queue.Queue = queue.Queue()
    trail: list[str] = []

    def killer(victim, coro=None):
        assert victim.terminate() == 0
        return (yield victim.finish())

    victim = Coro(receive_forever, signals, trail)
    assert signals.get(timeout=TIMEOUT) == "ready"
    Coro(killer, victim).value(TIMEOUT)
    assert trail == ["closed"]


# -- a coroutine interrupted before its first step (in a subprocess: a hung coroutine
# -- would otherwise stay in the shared kernel) -------------------------------------------

EARLY_PROGRAM = textwrap.dedent(
    """
    import json
    import threading
    from discoro import AsynCoro, Coro

    def body(coro=None):
        yield coro.receive()

    async def abody(coro=None):
        await coro.receive()

    def watcher(coro=None):
        msg = yield coro.receive(timeout=5, alarm_value=None)  # a bound, not a wait
        return "no end reported" if msg is None else msg.args[1][0].__name__

    def interrupt(target, action):
        c = Coro(target)
        if action == "terminate":
            c.terminate()
        else:
            c.throw(ValueError)
        return c

    def with_the_loop_held(func, *args):
        # run func while the loop waits: the coroutine cannot take its first step before
        entered, release = threading.Event(), threading.Event()

        def hold():
            entered.set()
            release.wait(5)

        AsynCoro().loop.call_soon_threadsafe(hold)
        entered.wait(5)
        try:
            return func(*args)
        finally:
            release.set()

    def from_inside(target, action, watchers, coro=None):
        w = Coro(watcher)
        interrupt(target, action).notify(w)
        watchers.append(w)
        yield

    watchers = {}
    for style, target in (("gen", body), ("async", abody)):
        for action in ("terminate", "throw"):
            w = Coro(watcher)
            with_the_loop_held(interrupt, target, action).notify(w)
            watchers[f"{style}-{action}-thread"] = w
            inner = []
            Coro(from_inside, target, action, inner).value(5)
            watchers[f"{style}-{action}-coroutine"] = inner[0]
    print(json.dumps({key: w.value(10) for key, w in watchers.items()}))
    AsynCoro().terminate()
    """
)


@pytest.fixture(scope="module")
def early_results():
    proc = subprocess.run(
        [sys.executable, "-c", EARLY_PROGRAM], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("gen-terminate-thread", "StopIteration"),
        ("gen-terminate-coroutine", "StopIteration"),
        ("async-terminate-thread", "StopIteration"),
        ("async-terminate-coroutine", "StopIteration"),
        ("gen-throw-thread", "ValueError"),
        ("gen-throw-coroutine", "ValueError"),
        ("async-throw-thread", "ValueError"),
        ("async-throw-coroutine", "ValueError"),
    ],
)
def test_interrupt_right_after_construction(early_results, case, expected):
    assert early_results[case] == expected
