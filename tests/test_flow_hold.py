"""The driver's back-pressure hook (issue 9): a coroutine given a hold waits at its next
suspension point (a ``yield`` of a discoro call, ``sleep(0)`` included, in both styles) until
the hold is done, and an interrupt or asyncio's cancellation still reaches it there."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from discoro import AsynCoro, Coro
from testing import all_blocked

pytestmark = pytest.mark.timeout(30)

Holds = list[asyncio.Future[None]]


def held_at_next_yield(steps: list[str], holds: Holds, coro: Any = None) -> Any:
    hold: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    holds.append(hold)
    coro._hold = hold  # as the network does after a send that filled a link
    steps.append("sent")
    yield coro.sleep(0)
    steps.append("went on")
    return "done"


async def held_async(steps: list[str], holds: Holds, coro: Any = None) -> Any:
    hold: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    holds.append(hold)
    coro._hold = hold
    steps.append("sent")
    await coro.sleep(0)
    steps.append("went on")
    return "done"


@pytest.mark.parametrize("target", [held_at_next_yield, held_async])
def test_a_held_coroutine_waits_at_its_next_suspension_until_released(target: Any) -> None:
    kernel = AsynCoro.instance()
    steps: list[str] = []
    holds: Holds = []
    coro = Coro(target, steps, holds)
    all_blocked(kernel)  # it stays blocked on the hold, however many loop turns pass
    assert steps == ["sent"]
    kernel.call(holds[0].set_result, None)
    assert coro.value(timeout=10) == "done"
    assert steps == ["sent", "went on"]


def test_terminate_and_throw_reach_a_held_coroutine() -> None:
    kernel = AsynCoro.instance()
    steps: list[str] = []
    holds: Holds = []
    coro = Coro(held_at_next_yield, steps, holds)
    all_blocked(kernel)
    assert coro.terminate() == 0
    coro.value(timeout=10)  # it ended while held
    assert steps == ["sent"]

    def catcher(coro: Any = None) -> Any:
        coro._hold = asyncio.get_running_loop().create_future()
        try:
            yield coro.sleep(0)
        except KeyError:
            return "caught while held"
        return "not thrown"

    held = Coro(catcher)
    all_blocked(kernel)
    held.throw(KeyError("x"))
    assert held.value(timeout=10) == "caught while held"


def test_asyncio_cancellation_reaches_a_held_coroutine() -> None:
    kernel = AsynCoro.instance()
    outcome: list[str] = []

    def cancelled(coro: Any = None) -> Any:
        coro._hold = asyncio.get_running_loop().create_future()
        try:
            yield coro.sleep(0)
        except asyncio.CancelledError:
            outcome.append("cancelled at the held yield")
            raise

    coro = Coro(cancelled)
    all_blocked(kernel)
    task = coro._task
    assert task is not None
    kernel.call(task.cancel)
    coro.value(timeout=10)
    assert outcome == ["cancelled at the held yield"]
