"""`WaitQueue`: the FIFO of blocked coroutines behind every synchronisation primitive.

Each waiter parks on its own future of the kernel's loop. A waker resolves the oldest
pending future with a value (``True``: "you were woken", or a handed-over resource); a
timer resolves it with ``False``.

Invariants:
- Used on the loop thread only; waking a waiter from another thread raises
  `WrongThreadError` instead of corrupting the loop.
- A waiter's future leaves the queue when its ``wait`` ends, however it ends (woken,
  timed out, cancelled by ``terminate()``/``throw()``), so the queue never keeps dead
  waiters for long; wakers skip any future that is already done.
- Hand-over safety: if a waiter is interrupted after a waker resolved its future with
  ``True`` but before it ran, ``on_lost_grant`` is called so the caller can pass the
  resource on (a lock handed to a coroutine that is being terminated is not lost).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING

from discoro.core.kernel import AsynCoro
from discoro.errors import WrongThreadError

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType


def _time_out(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


def check_loop_thread(what: str) -> None:
    """Raise `WrongThreadError` unless called on the kernel's loop thread."""
    kernel = AsynCoro._existing_instance()
    if kernel is None or not kernel.on_loop_thread():
        raise WrongThreadError(
            f"{what} is a coroutine-level primitive: use it inside coroutines only"
        )


class WaitQueue:
    """Blocked coroutines in arrival order."""

    __slots__ = ("_futures",)

    def __init__(self) -> None:
        self._futures: deque[asyncio.Future[bool]] = deque()

    def __len__(self) -> int:
        return sum(1 for future in self._futures if not future.done())

    def __bool__(self) -> bool:
        return any(not future.done() for future in self._futures)

    async def wait(
        self, timeout: float | None = None, on_lost_grant: Callable[[], object] | None = None
    ) -> bool:
        """Block until woken (True) or until ``timeout`` seconds pass (False; None: never)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._futures.append(future)
        timer = None if timeout is None else loop.call_later(timeout, _time_out, future)
        try:
            return await future
        except BaseException:  # terminated, thrown into or cancelled: pass a grant on
            granted = future.done() and not future.cancelled() and future.result()
            if granted and on_lost_grant is not None:
                on_lost_grant()
            raise
        finally:
            if timer is not None:
                timer.cancel()
            with contextlib.suppress(ValueError):
                self._futures.remove(future)

    def wake_one(self) -> bool:
        """Wake the oldest waiter; False if nobody was waiting."""
        futures = self._futures
        while futures:
            future = futures[0]
            if not future.done():
                check_loop_thread("waking a waiter")
                futures.popleft().set_result(True)
                return True
            futures.popleft()
        return False

    def wake_all(self) -> int:
        """Wake every waiter; how many were woken."""
        woken = 0
        while self.wake_one():
            woken += 1
        return woken


class AcquireRelease:
    """``async with`` for a primitive that has ``acquire()`` and ``release()``."""

    __slots__ = ()

    async def acquire(self) -> bool:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
