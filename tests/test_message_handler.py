"""`MessageHandler` (a coroutine whose messages are handled as they arrive) and `wait_own`
(a coroutine awaits a future as its own wait): the runtime's dispatchers without loop turns
of their own (issue 9)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

from discoro import AsynCoro, Coro, MonitorException
from discoro.core.coro import wait_own
from discoro.core.handler import MessageHandler

if TYPE_CHECKING:
    import asyncio

pytestmark = pytest.mark.timeout(30)
TIMEOUT = 10


def test_messages_are_handled_at_once_in_order_and_never_reentrantly() -> None:
    handled: list[object] = []
    depth = [0]

    def handle(message: object) -> None:
        depth[0] += 1
        assert depth[0] == 1, "handle was re-entered"
        handled.append(message)
        if message == "first":
            handler.send("from inside")  # waits until this call returns
            assert handled == ["first"]
        depth[0] -= 1

    handler = MessageHandler(handle, name="h")

    async def sender(coro: Any = None) -> list[object]:
        for message in ("first", "second"):
            handler.send(message)
        return list(handled)  # handled before the sender went on: no loop turn between

    assert Coro(sender).value(TIMEOUT) == ["first", "from inside", "second"]
    handler.terminate()


def test_a_failing_message_is_logged_and_the_next_one_handled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled: list[object] = []

    def handle(message: object) -> None:
        if message == "bad":
            raise ValueError("bad message")
        handled.append(message)

    handler = MessageHandler(handle, name="fragile")

    async def sender(coro: Any = None) -> list[object]:
        handler.send("bad")
        handler.send("good")
        return list(handled)

    with caplog.at_level(logging.ERROR, logger="discoro"):
        assert Coro(sender).value(TIMEOUT) == ["good"]
    assert [r for r in caplog.records if "failed to handle 'bad'" in r.getMessage()]
    handler.terminate()


def test_a_handler_is_a_coroutine_to_others_and_ends_by_terminate() -> None:
    handler = MessageHandler(lambda message: None, name="ends")

    async def watcher(coro: Any = None) -> object:
        assert await coro.monitor(handler) == 0
        assert AsynCoro.instance().local_coro(handler.id) is handler
        handler.terminate()
        notice = await coro.receive(TIMEOUT)
        assert handler.send("late") == -1  # ended: nothing more is taken
        assert AsynCoro.instance().local_coro(handler.id) is None
        return notice

    notice = Coro(watcher).value(TIMEOUT)
    assert isinstance(notice, MonitorException)
    assert notice.args[0] is handler and notice.args[1][0] is StopIteration
    assert handler.terminate() == -1


def test_wait_own_gets_the_result_and_a_terminate_still_ends_the_waiter() -> None:
    kernel = AsynCoro.instance()
    futures: list[asyncio.Future[object]] = []

    async def waiter(coro: Any = None) -> object:
        future = kernel.loop.create_future()
        futures.append(future)
        first = await wait_own(future)
        coro.send("not a wake-up")  # a message does not end a wait_own
        second = kernel.loop.create_future()
        futures.append(second)
        await wait_own(second)  # terminated here
        return ("never", first)

    waiting = Coro(waiter)

    async def driver(coro: Any = None) -> None:
        while not futures:
            await coro.sleep(0.01)
        futures[0].set_result("answer")
        while len(futures) < 2:
            await coro.sleep(0.01)
        await coro.sleep(0.05)
        assert not futures[1].done()  # the message did not complete it
        waiting.terminate()

    Coro(driver).value(TIMEOUT)
    assert waiting.value(TIMEOUT) is None  # terminated: no final value
