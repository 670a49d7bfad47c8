"""discoro's blocking calls and interrupts inside asyncio's cancellation constructs (issue 11).

A ``receive``, ``sleep`` or lock ``acquire`` awaited under ``asyncio.timeout`` / ``wait_for`` /
``TaskGroup`` behaves as asyncio's own awaitables do: it times out and loses nothing. The
scenarios take a mailbox type and run both ways (`asyncio_compare`): an ``asyncio.Queue`` and
``asyncio.Lock`` under plain asyncio, the coroutine's own ``receive``/``send`` and a discoro
``Lock`` under discoro. Then discoro's interrupts (throw, terminate) inside the same
constructs: they keep their semantics and never cancel anything.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
from typing import Any

import pytest

from asyncio_compare import LONG, SHORT, TIMEOUT, cancelling, described, run_discoro, run_plain
from discoro import AsynCoro, Coro, Lock, MonitorException

# -- the same blocking calls under both runtimes ------------------------------------------


class QueueMailbox:
    """Plain asyncio: an ``asyncio.Queue``."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def put_soon(self, message: Any) -> None:
        asyncio.get_running_loop().call_soon(self.queue.put_nowait, message)

    async def get(self) -> Any:
        return await self.queue.get()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    @staticmethod
    def lock() -> Any:
        return asyncio.Lock()

    @staticmethod
    async def hold(lock: Any) -> contextvars.Context:
        """Have another task take ``lock``; its context (to release it in)."""
        taken = asyncio.get_running_loop().create_future()

        async def holder():
            await lock.acquire()
            taken.set_result(contextvars.copy_context())

        holding = asyncio.ensure_future(holder())
        context = await taken
        await holding  # it ends once the lock is taken, leaving the lock held
        return context


class CoroMailbox:
    """discoro: the running coroutine's mailbox."""

    def __init__(self) -> None:
        coro = AsynCoro.cur_coro()
        assert coro is not None
        self.coro = coro

    def put_soon(self, message: Any) -> None:
        asyncio.get_running_loop().call_soon(self.coro.send, message)

    async def get(self) -> Any:
        return await self.coro.receive()

    async def sleep(self, seconds: float) -> None:
        await self.coro.sleep(seconds)

    @staticmethod
    def lock() -> Any:
        return Lock()

    @staticmethod
    async def hold(lock: Any) -> contextvars.Context:
        """Have another coroutine take ``lock``; its context (to release it in)."""
        taken = asyncio.get_running_loop().create_future()

        async def holder(coro=None):
            await lock.acquire()
            taken.set_result(contextvars.copy_context())

        Coro(holder)
        return await taken


# -- scenarios ------------------------------------------------------------------------------


async def task_group_cancels_a_body_blocked_in_receive(mailbox_type):
    mailbox = mailbox_type()
    seen = []

    async def failing():
        await asyncio.sleep(0)
        raise KeyError("child")

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(failing())
            try:
                await mailbox.get()
            except asyncio.CancelledError:
                seen.append("receive cancelled")
                raise
    except* KeyError:
        seen.append("group failed")
    mailbox.put_soon("after")
    seen += [await mailbox.get(), cancelling()]
    return seen


async def receive_times_out_then_gets_a_later_message(mailbox_type):
    mailbox = mailbox_type()
    seen = []
    try:
        async with asyncio.timeout(SHORT):
            await mailbox.get()
    except TimeoutError:
        seen.append("timed out")
    mailbox.put_soon("later")
    seen += [await mailbox.get(), cancelling()]
    return seen


async def receive_and_timeout_in_the_same_loop_turn(mailbox_type):
    # the message arrives and the timeout fires before the receiver wakes: nothing is lost
    mailbox = mailbox_type()
    mailbox.put_soon("raced")
    seen = []
    try:
        async with asyncio.timeout(0):
            seen.append(await mailbox.get())
    except TimeoutError:
        seen.append("timed out")
    async with asyncio.timeout(LONG):
        seen.append(await mailbox.get())
    seen.append(cancelling())
    return seen


async def receive_under_wait_for(mailbox_type):
    mailbox = mailbox_type()
    seen = []
    try:
        await asyncio.wait_for(mailbox.get(), SHORT)
    except TimeoutError:
        seen.append("timed out")
    mailbox.put_soon("queued")
    seen += [await asyncio.wait_for(mailbox.get(), LONG), cancelling()]
    return seen


async def sleep_under_timeout(mailbox_type):
    mailbox = mailbox_type()
    try:
        async with asyncio.timeout(SHORT):
            await mailbox.sleep(LONG)
    except TimeoutError:
        return "timed out", cancelling()
    return "slept"


async def lock_acquire_times_out(mailbox_type):
    lock = mailbox_type.lock()
    holder = await mailbox_type.hold(lock)
    seen = []
    try:
        async with asyncio.timeout(SHORT):
            await lock.acquire()
    except TimeoutError:
        seen.append("timed out")
    holder.run(lock.release)
    seen += [lock.locked(), await lock.acquire(), cancelling()]
    lock.release()
    return seen


async def lock_handed_over_as_the_timeout_fires(mailbox_type):
    # the release hands the lock to the waiter and the timeout fires before it runs: the
    # lock is not lost
    lock = mailbox_type.lock()
    holder = await mailbox_type.hold(lock)
    asyncio.get_running_loop().call_soon(lock.release, context=holder)
    seen = []
    try:
        async with asyncio.timeout(0):
            seen.append(await lock.acquire())
    except TimeoutError:
        seen.append("timed out")
    seen.append(lock.locked())
    async with asyncio.timeout(LONG):
        seen.append(await lock.acquire())
    lock.release()
    seen.append(cancelling())
    return seen


SCENARIOS = [
    task_group_cancels_a_body_blocked_in_receive,
    receive_times_out_then_gets_a_later_message,
    receive_and_timeout_in_the_same_loop_turn,
    receive_under_wait_for,
    sleep_under_timeout,
    lock_acquire_times_out,
    lock_handed_over_as_the_timeout_fires,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
def test_discoro_blocking_calls_behave_as_asyncio_awaitables(scenario):
    expected = run_plain(scenario, QueueMailbox)
    assert run_discoro(scenario, CoroMailbox) == expected


def test_the_scenarios_observe_what_asyncio_documents():
    # pins the plain-asyncio side, so a scenario that observes nothing cannot pass unnoticed
    assert run_plain(receive_and_timeout_in_the_same_loop_turn, QueueMailbox) == [
        "timed out",
        "raced",
        0,
    ]
    assert run_plain(lock_handed_over_as_the_timeout_fires, QueueMailbox) == [
        "timed out",
        False,
        True,
        0,
    ]


# -- generator coroutines yield the same constructs -----------------------------------------


def test_generator_coroutine_yields_wait_for_on_receive():
    def gen(coro=None):
        seen = []
        try:
            yield asyncio.wait_for(coro.receive(), SHORT)
        except TimeoutError:
            seen.append("timed out")
        coro.send("queued")
        seen.append((yield asyncio.wait_for(coro.receive(), LONG)))
        return seen

    assert Coro(gen).value(TIMEOUT) == ["timed out", "queued"]


# -- discoro's own interrupts inside asyncio constructs -------------------------------------


def test_throw_inside_asyncio_timeout_is_the_thrown_exception_and_loses_no_message():
    signals: queue.Queue[str] = queue.Queue()

    async def waiter(coro=None):
        seen = []
        try:
            async with asyncio.timeout(LONG) as scope:
                signals.put("waiting")
                await coro.receive()
        except ValueError as exc:
            seen.append(described(exc))
        seen += [scope.expired(), cancelling(), await coro.receive()]
        return seen

    async def interrupter(target, coro=None):
        target.send("kept")  # arrives first: the throw must put it back
        target.throw(ValueError("thrown"))

    target = Coro(waiter)
    assert signals.get(timeout=TIMEOUT) == "waiting"
    Coro(interrupter, target)
    assert target.value(TIMEOUT) == [("ValueError", ("thrown",)), False, 0, "kept"]


def test_terminate_inside_asyncio_timeout_ends_the_coroutine_and_runs_its_cleanup():
    signals: queue.Queue[str] = queue.Queue()
    cleanup: list[str] = []

    async def member(coro=None):
        try:
            async with asyncio.timeout(LONG):
                signals.put("inside")
                await coro.receive()
        finally:
            cleanup.append("finally ran")
        return "not reached"

    def watcher(target, coro=None):
        coro.set_daemon()
        yield coro.monitor(target)
        signals.put("watching")
        info = yield coro.receive()
        return info

    target = Coro(member)
    assert signals.get(timeout=TIMEOUT) == "inside"
    watch = Coro(watcher, target)
    assert signals.get(timeout=TIMEOUT) == "watching"
    target.terminate()
    info = watch.value(TIMEOUT)
    assert isinstance(info, MonitorException)
    assert info.args[1][0] is StopIteration
    assert cleanup == ["finally ran"]


def test_throw_while_awaiting_a_task_leaves_the_task_running():
    signals: queue.Queue[str] = queue.Queue()

    async def awaiting(coro=None):
        release = asyncio.get_running_loop().create_future()

        async def work():
            await release
            return "finished"

        task = asyncio.ensure_future(work())
        signals.put("awaiting")
        try:
            await task
        except ValueError as exc:
            caught = described(exc)
        state = task.done()
        release.set_result(None)
        return caught, state, await task, cancelling()

    target = Coro(awaiting)
    assert signals.get(timeout=TIMEOUT) == "awaiting"
    target.throw(ValueError)
    assert target.value(TIMEOUT) == (("ValueError", ()), False, "finished", 0)


def test_an_uncaught_asyncio_cancellation_ends_the_coroutine_like_terminate():
    # discoro's own rule for the end (a plain task would end cancelled): monitors see a
    # normal finish, and the cleanup on the way out ran
    cleanup: list[str] = []

    async def cancelled(coro=None):
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        try:
            await coro.receive()
        finally:
            cleanup.append("finally ran")
        return "not reached"

    def watcher(coro=None):
        target = Coro(cancelled)
        yield coro.monitor(target)
        info = yield coro.receive()
        return info.args[1], (yield target.finish())

    assert Coro(watcher).value(TIMEOUT) == ((StopIteration, None), None)
    assert cleanup == ["finally ran"]
