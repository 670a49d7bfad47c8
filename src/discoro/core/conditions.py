"""`Condition`, `Event` and `Semaphore`: coroutine-level synchronisation (reference 1.9).

Every method that may block is an ``async def`` (``yield`` it in a generator coroutine,
``await`` it in an async one); the others are plain.

Invariants:
- Loop thread only; not thread-safe (as in the original).
- Waiters are woken in FIFO order (`WaitQueue`).
- `Condition` owns an `RLock` (no external lock, as in the original). ``wait`` releases it
  completely and, however the wait ends (notified, timed out, terminated, thrown at), holds
  it again with the saved depth before returning or raising. A waiter notified but
  interrupted before it ran passes the notification on to the next waiter.
- `Semaphore` hands a released unit straight to the oldest waiter, so its counter is
  positive only while nobody waits and newcomers never overtake waiters.
"""

from __future__ import annotations

from discoro.core.locks import RLock, wait_time
from discoro.core.waitqueue import AcquireRelease, WaitQueue


class Condition(AcquireRelease):
    """A condition variable with its own re-entrant lock."""

    __slots__ = ("_lock", "_waiters")

    def __init__(self) -> None:
        self._lock = RLock()
        self._waiters = WaitQueue()

    def __repr__(self) -> str:
        return f"<Condition {self._lock!r}, {len(self._waiters)} waiting for notify>"

    async def acquire(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        """Acquire the condition's lock (re-entrant); like `RLock.acquire`."""
        return await self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    async def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for `notify` (True) or ``timeout`` seconds (False), then
        take the lock back at the depth it had. The caller must hold the lock."""
        if not self._lock._is_owned():
            raise RuntimeError("wait() on a Condition whose lock the caller does not hold")
        depth = self._lock._release_save()
        try:
            # notified but cancelled before running: pass the notification on
            return await self._waiters.wait(timeout, self._waiters.wake_one)
        finally:
            await self._lock._acquire_restore(depth)

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiters (oldest first). The caller must hold the lock."""
        if not self._lock._is_owned():
            raise RuntimeError("notify() on a Condition whose lock the caller does not hold")
        for _ in range(n):
            if not self._waiters.wake_one():
                break

    def notify_all(self) -> None:
        """Wake every waiter. The caller must hold the lock."""
        if not self._lock._is_owned():
            raise RuntimeError("notify_all() on a Condition whose lock the caller does not hold")
        self._waiters.wake_all()

    notifyAll = notify_all


class Event:
    """A flag coroutines can wait for; `set` wakes every waiter."""

    __slots__ = ("_flag", "_waiters")

    def __init__(self) -> None:
        self._flag = False
        self._waiters = WaitQueue()

    def __repr__(self) -> str:
        return f"<Event {'set' if self._flag else 'clear'}, {len(self._waiters)} waiting>"

    def set(self) -> None:
        self._flag = True
        self._waiters.wake_all()

    def clear(self) -> None:
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    isSet = is_set

    async def wait(self, timeout: float | None = None) -> bool:
        """True once the flag is set (at once if it is); False after ``timeout`` seconds."""
        if self._flag:
            return True
        if timeout is not None and timeout <= 0:
            return False
        return await self._waiters.wait(timeout)


class Semaphore(AcquireRelease):
    """A counter of free units: `acquire` takes one (waiting if none), `release` returns one."""

    __slots__ = ("_value", "_waiters")

    def __init__(self, value: int = 1) -> None:
        if value < 0:
            raise ValueError(f"Semaphore initial value must be >= 0, not {value}")
        self._value = value
        self._waiters = WaitQueue()

    def __repr__(self) -> str:
        return f"<Semaphore value={self._value}, {len(self._waiters)} waiting>"

    @property
    def value(self) -> int:
        """Free units now."""
        return self._value

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a unit: True, or False if none was free (``blocking=False``) or none came
        within ``timeout`` seconds (an extension; the original waited without limit)."""
        if self._value > 0:
            self._value -= 1
            return True
        wait_for = wait_time(blocking, timeout)
        if wait_for == 0:
            return False
        return await self._waiters.wait(wait_for, self.release)

    def release(self) -> None:
        """Return a unit: to the oldest waiter if any, else to the counter."""
        if not self._waiters.wake_one():
            self._value += 1
