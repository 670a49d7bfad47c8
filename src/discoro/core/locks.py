"""`Lock` and `RLock`: coroutine-level mutual exclusion (reference 1.9).

``acquire`` is an ``async def``: a generator coroutine writes ``yield lock.acquire()``, an
async one ``await lock.acquire()`` (or ``async with lock:``). The owner is the coroutine that
acquired the lock (`AsynCoro.cur_coro()`); only it may release.

Invariants:
- Loop thread only; not thread-safe (as in the original).
- Strict FIFO hand-over: ``release`` with coroutines waiting does not unlock, it hands the lock
  to the oldest waiter (``_owner`` is `_HANDED_OVER` until that waiter runs and claims it).
  So the lock is free only when nobody waits, and a newcomer never overtakes a waiter.
- A waiter that times out or is terminated/thrown at leaves the queue; if the lock had just
  been handed to it, it passes the lock on, so the lock stays usable.
- ``_depth`` counts the owner's nested acquisitions (always 1 for a `Lock`).
"""

from __future__ import annotations

import asyncio

from discoro.core.kernel import AsynCoro
from discoro.core.waitqueue import AcquireRelease, WaitQueue

_HANDED_OVER = object()  # owner placeholder between a hand-over and the new owner running


def wait_time(blocking: bool, timeout: float | None) -> float | None:
    """Seconds to wait: None forever, 0 not at all (threading's convention: timeout < 0 or
    None is forever)."""
    if not blocking:
        return 0
    return None if timeout is None or timeout < 0 else timeout


class Lock(AcquireRelease):
    """A mutual-exclusion lock owned by one coroutine at a time."""

    _reentrant = False
    __slots__ = ("_depth", "_locked", "_owner", "_waiters")

    def __init__(self) -> None:
        self._locked = False
        self._owner: object = None  # a Coro, or _HANDED_OVER
        self._depth = 0
        self._waiters = WaitQueue()

    def __repr__(self) -> str:
        state = f"locked by {self._owner}" if self._locked else "unlocked"
        return f"<{type(self).__name__} {state}, {len(self._waiters)} waiting>"

    def locked(self) -> bool:
        return self._locked

    async def acquire(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        """Take the lock: True, or False if it was not free within ``timeout`` seconds
        (``blocking=False``: do not wait; ``timeout`` < 0 or None: wait as long as needed)."""
        me = AsynCoro.cur_coro()
        if not self._locked:
            self._locked, self._owner, self._depth = True, me, 1
            return True
        if self._owner is me:
            if self._reentrant:
                self._depth += 1
                return True
            if wait_time(blocking, timeout) is None:
                raise RuntimeError(f"{me} would deadlock: it already holds this {self!r}")
        wait_for = wait_time(blocking, timeout)
        if wait_for == 0:
            return False
        if not await self._waiters.wait(wait_for, self._pass_on):
            return False
        self._owner, self._depth = me, 1
        return True

    def release(self) -> None:
        """Give the lock up (once per acquire for an `RLock`); only the owner may."""
        if not self._locked:
            raise RuntimeError(f"release of an unlocked {type(self).__name__}")
        me = AsynCoro.cur_coro()
        if self._owner is not me:
            raise RuntimeError(f"{type(self).__name__} owned by {self._owner}, released by {me}")
        self._depth -= 1
        if self._depth <= 0:
            self._pass_on()

    def _pass_on(self) -> None:
        """Hand the lock to the oldest waiter, or unlock it if nobody waits."""
        self._depth = 0
        if self._waiters.wake_one():
            self._owner = _HANDED_OVER
        else:
            self._locked, self._owner = False, None

    # -- for Condition --------------------------------------------------------------------

    def _is_owned(self) -> bool:
        return self._locked and self._owner is AsynCoro.cur_coro()

    def _release_save(self) -> int:
        """Release completely (whatever the depth); the depth to restore later."""
        depth = self._depth
        self._pass_on()
        return depth

    async def _acquire_restore(self, depth: int) -> None:
        """Re-acquire with ``depth``, even if cancelled meanwhile (the cancellation is raised
        once the lock is held again, so the caller's ``finally: release()`` stays valid)."""
        cancelled = False
        while True:
            try:
                await self.acquire()
                break
            except asyncio.CancelledError:
                cancelled = True
        self._depth = depth
        if cancelled:
            raise asyncio.CancelledError


class RLock(Lock):
    """A lock its owner may acquire again; it is free once released as often as acquired."""

    _reentrant = True
    __slots__ = ()
