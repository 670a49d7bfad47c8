"""asyncio's cancellation constructs inside ``async def`` discoro coroutines (issue 11).

Each scenario is one ``async def`` that returns what it observed. It runs twice: as a plain
asyncio task (``asyncio.run`` on a fresh loop) and as a discoro coroutine; the two results must
be equal. Scenarios that block on a mailbox take one: an ``asyncio.Queue`` under plain asyncio,
the coroutine's own ``receive``/``send`` under discoro, so discoro's blocking calls are held to
the behaviour of asyncio's own awaitables (time out, lose nothing).

Then discoro's own interrupts (throw, terminate) inside the same constructs: they keep their
semantics and never cancel anything.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
from typing import Any

import pytest

from discoro import AsynCoro, Coro, Lock, MonitorException

TIMEOUT = 10
SHORT = 0.01  # a timeout that fires
LONG = 30.0  # a wait that a timeout always cuts short


def cancelling() -> int:
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


def described(exc: BaseException) -> tuple[str, tuple[Any, ...]]:
    return type(exc).__name__, exc.args


# -- mailboxes: the same blocking receive under both runtimes -------------------------------


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


def run_plain(scenario: Any) -> Any:
    return asyncio.run(scenario(QueueMailbox))


def run_discoro(scenario: Any) -> Any:
    async def body(coro=None):
        return await scenario(CoroMailbox)

    return Coro(body).value(TIMEOUT)


# -- scenarios ------------------------------------------------------------------------------


async def timeout_expires(mailbox_type):
    seen = []
    try:
        async with asyncio.timeout(SHORT) as scope:
            await asyncio.sleep(LONG)
    except TimeoutError:
        seen.append("timed out")
    seen += [scope.expired(), cancelling(), await asyncio.sleep(0, "went on")]
    return seen


async def timeout_not_reached(mailbox_type):
    async with asyncio.timeout(LONG) as scope:
        value = await asyncio.sleep(0, "in time")
    return value, scope.expired(), cancelling()


async def timeout_rescheduled(mailbox_type):
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(None) as scope:
            scope.reschedule(loop.time() + SHORT)
            await asyncio.sleep(LONG)
    except TimeoutError:
        return "timed out", scope.expired(), cancelling()
    return "not timed out"


async def nested_timeouts_outer_fires(mailbox_type):
    seen = []
    try:
        async with asyncio.timeout(SHORT) as outer:
            try:
                async with asyncio.timeout(LONG) as inner:
                    await asyncio.sleep(LONG)
            except TimeoutError:
                seen.append("inner timed out")
    except TimeoutError:
        seen.append("outer timed out")
    return seen, outer.expired(), inner.expired(), cancelling()


async def timeout_swallowed_inside(mailbox_type):
    # catching the CancelledError inside the block (and going on) is the program's choice
    seen = []
    async with asyncio.timeout(SHORT) as scope:
        try:
            await asyncio.sleep(LONG)
        except asyncio.CancelledError:
            seen.append("caught the cancel")
    seen += [scope.expired(), cancelling()]
    return seen


async def wait_for_times_out_then_succeeds(mailbox_type):
    seen = []
    try:
        await asyncio.wait_for(asyncio.sleep(LONG), SHORT)
    except TimeoutError:
        seen.append("timed out")
    seen += [await asyncio.wait_for(asyncio.sleep(0, "in time"), LONG), cancelling()]
    return seen


async def wait_for_with_zero_timeout(mailbox_type):
    try:
        await asyncio.wait_for(asyncio.sleep(LONG), 0)
    except TimeoutError:
        return "timed out", cancelling()
    return "not timed out"


async def task_group_child_fails(mailbox_type):
    seen = []

    async def failing():
        await asyncio.sleep(0)
        raise ValueError("child failed")

    async def sibling():
        try:
            await asyncio.sleep(LONG)
        except asyncio.CancelledError:
            seen.append("sibling cancelled")
            raise

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(failing())
            group.create_task(sibling())
            try:
                await asyncio.sleep(LONG)
            except asyncio.CancelledError:
                seen.append("body cancelled")
                raise
    except* ValueError as errors:
        seen.append([described(exc) for exc in errors.exceptions])
    seen.append(cancelling())
    return seen


async def task_group_waits_for_children(mailbox_type):
    async def child(value):
        await asyncio.sleep(0)
        return value * 2

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(child(i)) for i in range(4)]
    return [task.result() for task in tasks], cancelling()


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


async def shield_under_timeout(mailbox_type):
    loop = asyncio.get_running_loop()
    release = loop.create_future()

    async def inner_work():
        await release
        return "inner done"

    inner = asyncio.ensure_future(inner_work())
    seen = []
    try:
        async with asyncio.timeout(SHORT):
            await asyncio.shield(inner)
    except TimeoutError:
        seen.append("timed out")
    seen.append(inner.done())
    release.set_result(None)
    seen += [await inner, cancelling()]
    return seen


async def cancel_self_then_uncancel(mailbox_type):
    task = asyncio.current_task()
    assert task is not None
    seen = [task.cancel("why"), task.cancelling()]
    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError as exc:
        seen.append(described(exc))
    seen.append(task.uncancel())
    seen.append(await asyncio.sleep(0, "went on"))
    return seen


async def cancel_reaches_the_awaited_future(mailbox_type):
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    future = loop.create_future()
    loop.call_soon(task.cancel, "stop")
    seen = []
    try:
        await future
    except asyncio.CancelledError as exc:
        seen.append(described(exc))
    seen += [future.cancelled(), task.uncancel()]
    return seen


async def cancel_after_the_future_completed(mailbox_type):
    # the result is in but the task has not woken yet: the cancel still wins at the await
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    future = loop.create_future()
    loop.call_soon(future.set_result, "result")
    loop.call_soon(task.cancel)
    try:
        value = await future
    except asyncio.CancelledError:
        value = "cancelled"
    return value, future.result(), task.uncancel()


async def cancel_refused_by_an_awaited_task(mailbox_type):
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    async def stubborn():
        try:
            await asyncio.sleep(LONG)
        except asyncio.CancelledError:
            return "refused"
        return "slept"

    inner = asyncio.ensure_future(stubborn())
    await asyncio.sleep(0)
    loop.call_soon(task.cancel)
    value = await inner
    return value, task.cancelling(), task.uncancel()


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
    timeout_expires,
    timeout_not_reached,
    timeout_rescheduled,
    nested_timeouts_outer_fires,
    timeout_swallowed_inside,
    wait_for_times_out_then_succeeds,
    wait_for_with_zero_timeout,
    task_group_child_fails,
    task_group_waits_for_children,
    task_group_cancels_a_body_blocked_in_receive,
    shield_under_timeout,
    cancel_self_then_uncancel,
    cancel_reaches_the_awaited_future,
    cancel_after_the_future_completed,
    cancel_refused_by_an_awaited_task,
    receive_times_out_then_gets_a_later_message,
    receive_and_timeout_in_the_same_loop_turn,
    receive_under_wait_for,
    sleep_under_timeout,
    lock_acquire_times_out,
    lock_handed_over_as_the_timeout_fires,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
def test_discoro_coroutine_behaves_as_a_plain_asyncio_task(scenario):
    expected = run_plain(scenario)
    assert run_discoro(scenario) == expected


def test_the_scenarios_observe_what_asyncio_documents():
    # pins the plain-asyncio side, so a scenario that observes nothing cannot pass unnoticed
    assert run_plain(timeout_expires) == ["timed out", True, 0, "went on"]
    assert run_plain(receive_and_timeout_in_the_same_loop_turn) == ["timed out", "raced", 0]
    assert run_plain(lock_handed_over_as_the_timeout_fires) == ["timed out", False, True, 0]
    assert run_plain(cancel_reaches_the_awaited_future) == [("CancelledError", ("stop",)), True, 0]
    assert run_plain(cancel_refused_by_an_awaited_task) == ("refused", 1, 0)
    assert run_plain(task_group_child_fails) == [
        "sibling cancelled",
        "body cancelled",
        [("ValueError", ("child failed",))],
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
