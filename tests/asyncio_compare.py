"""Running one ``async def`` scenario both ways, to compare: as a plain asyncio task
(``asyncio.run`` on a fresh loop in this thread) and as a discoro coroutine. A scenario returns
what it observed; the two results must be equal (see the test_coro_asyncio_*.py files)."""

from __future__ import annotations

import asyncio
from typing import Any

from discoro import Coro

TIMEOUT = 10
SHORT = 0.01  # a timeout that fires
LONG = 30.0  # a wait that a timeout always cuts short


def cancelling() -> int:
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


def described(exc: BaseException) -> tuple[str, tuple[Any, ...]]:
    return type(exc).__name__, exc.args


def run_plain(scenario: Any, *args: Any) -> Any:
    return asyncio.run(scenario(*args))


def run_discoro(scenario: Any, *args: Any) -> Any:
    async def body(coro=None):
        return await scenario(*args)

    return Coro(body).value(TIMEOUT)
