"""Same-turn wake-ups (`discoro.core.wakeups`, issue 9): a coroutine woken while a network
read is handed up runs when the read ends, in the same loop turn, in order, exactly once;
inside a task, or for a future that is not a task's own wait, the loop wakes it as usual."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from discoro import AsynCoro, Coro
from discoro.core.coro import wait_own
from discoro.core.wakeups import SameTurnWakeups

pytestmark = pytest.mark.timeout(30)
TIMEOUT = 10


async def _waiting_task(
    loop: asyncio.AbstractEventLoop, log: list[object], name: str
) -> tuple[asyncio.Future[object], asyncio.Task[None]]:
    """A task that logs ``(name, result)`` right after its future is done; it is waiting
    when this returns."""
    future: asyncio.Future[object] = loop.create_future()

    async def wait() -> None:
        try:
            log.append((name, await future))
        except asyncio.CancelledError:
            log.append((name, "cancelled"))
            raise

    task = loop.create_task(wait())
    await asyncio.sleep(0)  # its first step: it now waits on the future
    assert future._callbacks  # type: ignore[attr-defined]
    return future, task


def _in_a_callback(loop: asyncio.AbstractEventLoop, work: Any) -> asyncio.Future[object]:
    """Run ``work()`` in a plain loop callback (no task running, as a protocol's read);
    the returned future has what it returned."""
    done: asyncio.Future[object] = loop.create_future()
    loop.call_soon(lambda: done.set_result(work()))
    return done


def test_tasks_woken_in_a_batch_run_at_its_end_in_order() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        wakeups = SameTurnWakeups(loop)
        log: list[object] = []
        first, _ = await _waiting_task(loop, log, "first")
        second, _ = await _waiting_task(loop, log, "second")

        def read() -> list[object]:
            wakeups.begin()
            wakeups.complete(first, 1)
            wakeups.complete(second, 2)
            assert log == [], "a task ran before the batch ended"
            wakeups.end()
            return list(log)

        ran_by_the_end = await asyncio.wait_for(_in_a_callback(loop, read), TIMEOUT)
        assert ran_by_the_end == [("first", 1), ("second", 2)]
        assert not wakeups.deferring

    asyncio.run(main())


def test_outside_a_batch_the_loop_wakes_the_task() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        wakeups = SameTurnWakeups(loop)
        log: list[object] = []
        future, task = await _waiting_task(loop, log, "t")
        ran = await asyncio.wait_for(
            _in_a_callback(loop, lambda: (wakeups.complete(future, 7), list(log))[1]), TIMEOUT
        )
        assert ran == []  # not yet: the loop steps it in a later turn
        await asyncio.wait_for(task, TIMEOUT)
        assert log == [("t", 7)]

    asyncio.run(main())


def test_inside_a_task_the_loop_wakes_them() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        wakeups = SameTurnWakeups(loop)
        log: list[object] = []
        future, task = await _waiting_task(loop, log, "t")
        wakeups.begin()
        wakeups.complete(future, 3)
        wakeups.end()  # we are a task: we cannot step another one
        assert log == []
        await asyncio.wait_for(task, TIMEOUT)
        assert log == [("t", 3)]

    asyncio.run(main())


def test_nested_batches_run_at_the_outermost_end() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        wakeups = SameTurnWakeups(loop)
        log: list[object] = []
        future, _ = await _waiting_task(loop, log, "t")

        def read() -> list[object]:
            wakeups.begin()
            wakeups.begin()
            wakeups.complete(future, "x")
            wakeups.end()
            inner = list(log)
            wakeups.end()
            return [inner, list(log)]

        result = await asyncio.wait_for(_in_a_callback(loop, read), TIMEOUT)
        assert result == [[], [("t", "x")]]

    asyncio.run(main())


def test_a_future_that_is_not_a_tasks_wait_is_completed_as_usual() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        wakeups = SameTurnWakeups(loop)
        seen: list[object] = []
        future: asyncio.Future[object] = loop.create_future()
        future.add_done_callback(lambda f: seen.append(f.result()))

        def read() -> list[object]:
            wakeups.begin()
            wakeups.complete(future, 5)
            wakeups.end()
            return list(seen)

        assert await asyncio.wait_for(_in_a_callback(loop, read), TIMEOUT) == []
        await asyncio.sleep(0)
        assert seen == [5]

    asyncio.run(main())


def test_a_task_cancelled_before_the_batch_ends_sees_the_cancellation() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        wakeups = SameTurnWakeups(loop)
        log: list[object] = []
        future, task = await _waiting_task(loop, log, "t")

        def read() -> None:
            wakeups.begin()
            wakeups.complete(future, 1)
            task.cancel()
            wakeups.end()

        await asyncio.wait_for(_in_a_callback(loop, read), TIMEOUT)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, TIMEOUT)
        assert log == [("t", "cancelled")]

    asyncio.run(main())


def test_a_receiver_runs_at_the_end_of_the_read_and_keeps_message_order() -> None:
    """What the network does per received chunk (``Link._received``): deliveries between
    ``begin_read`` and ``end_read``; the receiving coroutine has handled them by the time
    ``end_read`` returns, and got them in order."""
    kernel = AsynCoro.instance()
    got: list[object] = []
    waiting = threading.Event()

    def receiver(coro: Any = None) -> Any:
        waiting.set()
        for _ in range(3):
            got.append((yield coro.receive()))
        return len(got)

    coro = Coro(receiver)
    assert waiting.wait(TIMEOUT)
    seen_at_end: list[object] = []
    done = threading.Event()

    def read() -> None:
        # wait until the receiver blocks in receive (its first step may not have ended)
        if coro._waiter is None:
            kernel._loop.call_soon(read)
            return
        kernel.begin_read()
        for message in ("a", "b", "c"):
            kernel.deliver_local(coro, message)
        assert got == []
        kernel.end_read()
        seen_at_end.extend(got)
        done.set()

    kernel._loop.call_soon_threadsafe(read)
    assert done.wait(TIMEOUT)
    assert seen_at_end == ["a", "b", "c"]
    assert coro.value(TIMEOUT) == 3


def test_a_reply_awaited_as_the_coroutines_own_wait_goes_on_at_the_end_of_the_read() -> None:
    """What a network reply does (``Network.take_reply``, the client's router): `complete`
    inside a read; the coroutine waiting for it with `wait_own` has gone on by ``end_read``."""
    kernel = AsynCoro.instance()
    state: dict[str, Any] = {}
    waiting = threading.Event()

    async def caller(coro: Any = None) -> object:
        future = kernel._loop.create_future()
        state["future"] = future
        waiting.set()
        state["answer"] = await wait_own(future)
        return state["answer"]

    coro = Coro(caller)
    assert waiting.wait(TIMEOUT)
    seen_at_end: list[object] = []
    done = threading.Event()

    def read() -> None:
        future = state["future"]
        if not future._callbacks:  # the caller has not suspended on it yet
            kernel._loop.call_soon(read)
            return
        kernel.begin_read()
        kernel.complete(future, "reply")
        assert "answer" not in state
        kernel.end_read()
        seen_at_end.append(state.get("answer"))
        done.set()

    kernel._loop.call_soon_threadsafe(read)
    assert done.wait(TIMEOUT)
    assert seen_at_end == ["reply"]
    assert coro.value(TIMEOUT) == "reply"
