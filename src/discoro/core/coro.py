"""`Coro`: a coroutine with a mailbox, monitors and a name (reference 1.2 to 1.6).

A `Coro` wraps a generator function (the seed's style, ``def f(coro=None): ... yield ...``) or
an ``async def`` function. Both run as one asyncio task on the kernel's loop; every blocking
method here is an ``async def``, so a generator ``yield``s the call and an async function
``await``s it (the driver in `driver.py` awaits what generators yield).

Invariants:
- All state below is read and written on the loop thread only; public methods that other
  threads may call (`send`, `resume`, `terminate`, `throw`, `value`, construction) hop over.
- A coroutine blocks on a future of its own only in `_block` (and in `wait_own`, for the
  runtime's replies): ``_waiter`` is the future it waits on and ``_wait_kind`` says why
  (RECEIVING, SUSPENDED or WAITING), so `send` wakes only a receiver and `resume` only a
  sleeper.
- An interrupt (throw, terminate, a hot swap it can take) wakes a suspended coroutine by
  completing what it waits on with ``_WOKEN``; the driver then throws the interrupt in, so
  ``_block`` never returns ``_WOKEN`` and never puts it back as a message.
- When it ends, each monitor gets one `MonitorException`, ``_done`` is set and every
  `finish()` waiter is woken, in that order.
- Timed waits share one alarm per coroutine (``_alarm``, armed for ``_alarm_at``): a wait
  ends at its own ``_deadline``, never at an earlier wait's (an alarm that rings before the
  current deadline is re-armed for it); the alarm is cancelled when the coroutine ends.
- ``_hold``, when set (by the network, on the loop thread, after a send filled a link), is
  awaited by the driver at the coroutine's next suspension point, then cleared.
- A handle whose ``_remote`` is true stands for a coroutine in another process; its methods
  go through the network layer (``kernel.network()``).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import traceback
from collections import deque
from threading import get_ident
from types import GeneratorType
from typing import TYPE_CHECKING, Any, TypeVar

from discoro.core.coro_target import make_body, split_target
from discoro.core.driver import TERMINATE, _current_coro, switch
from discoro.core.kernel import AsynCoro
from discoro.core.located import Located
from discoro.core.log import logger
from discoro.errors import (
    HotSwapException,
    MonitorException,
    NotACoroutineFunction,
    WrongThreadError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

RUNNING, RECEIVING, SUSPENDED, WAITING = 0, 1, 2, 3

_ids = itertools.count(1)
T = TypeVar("T")
_TIMED_OUT = object()  # what a wait's future holds when its timeout fired
_WOKEN = object()  # what it holds when an interrupt woke the coroutine (the driver throws it in)


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(_TIMED_OUT)


class Coro(Located):
    """A coroutine: ``Coro(target, *args, **kwargs)`` starts ``target(*args, **kwargs)``."""

    __slots__ = (
        "__weakref__",
        "_alarm",
        "_alarm_at",
        "_body",
        "_daemon",
        "_deadline",
        "_depth",
        "_done",
        "_exc_info",
        "_finish_waiters",
        "_hold",
        "_id",
        "_interrupts",
        "_is_async",
        "_kernel",
        "_location",
        "_mailbox",
        "_monitors",
        "_name",
        "_remote",
        "_suspended_on",
        "_swappable",
        "_task",
        "_value",
        "_wait_kind",
        "_waiter",
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        """``Coro(target, *args, **kwargs)``, or the later keyword form
        ``Coro(target=f, args=(...), kwargs={...})`` (`split_target`)."""
        if args:  # the common case, kept cheap
            target: Callable[..., object] = args[0]  # type: ignore[assignment]
            args = args[1:]
        else:
            target, args, kwargs = split_target(args, kwargs)
        kernel = AsynCoro._singleton_instance or AsynCoro.instance()
        self._init_state(kernel, getattr(target, "__name__", repr(target)), next(_ids), None, False)
        self._body = make_body(self, target, args, kwargs)
        self._is_async = type(self._body) is not GeneratorType
        kernel._coros[self._id] = self
        if get_ident() == kernel._thread_id:
            kernel._spawn(self)
        else:
            kernel.call(kernel._spawn, self)

    @classmethod
    def _handle(cls, name: str, coro_id: int, location: Any) -> Coro:
        """A handle for the coroutine ``name/coro_id`` that lives at ``location``."""
        handle = cls.__new__(cls)
        handle._init_state(
            AsynCoro._singleton_instance or AsynCoro.instance(), name, coro_id, location, True
        )
        return handle

    def _init_state(
        self, kernel: AsynCoro, name: str, coro_id: int, location: Any, remote: bool
    ) -> None:
        """Every slot, as a new local coroutine or a handle for a remote one has it."""
        self._kernel = kernel
        self._name = name
        self._id = coro_id
        self._location: Any = location
        self._remote = remote
        self._mailbox: deque[Any] = deque()
        self._waiter: asyncio.Future[Any] | None = None
        self._wait_kind = RUNNING
        self._task: asyncio.Task[Any] | None = None
        self._monitors: list[Coro] | None = None  # made on first use
        self._daemon = False
        self._done = False
        self._value: Any = None
        self._exc_info: tuple[Any, ...] | None = None
        self._interrupts: list[object] = []  # TERMINATE or exceptions to throw
        self._suspended_on: asyncio.Future[Any] | None = None
        self._swappable = False
        self._depth = 0
        self._finish_waiters: list[asyncio.Future[Any]] | None = None
        self._hold: asyncio.Future[None] | None = None  # back-pressure: wait at the next yield
        self._deadline = 0.0  # when the current timed wait ends (loop time; 0.0: none)
        self._alarm: asyncio.TimerHandle | None = None  # armed for _alarm_at (see _block)
        self._alarm_at = 0.0
        self._body = None
        self._is_async = False

    # -- identity -------------------------------------------------------------------------

    @property
    def id(self) -> int:
        """The coroutine's id, unique in its process (with `location`, everywhere)."""
        return self._id

    def __str__(self) -> str:
        location = self._where()
        if location is None:
            return f"{self._name}/{self._id}"
        return f"{self._name}/{self._id}@{location}"

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Coro):
            return NotImplemented
        return self._id == other._id and self.location == other.location

    def __hash__(self) -> int:
        return hash(self._id)

    def __reduce__(self) -> tuple[Any, ...]:
        from discoro.core.references import coro_reference

        return coro_reference(self)

    # -- messages -------------------------------------------------------------------------

    def send(self, message: Any) -> int:
        """Queue ``message`` for this coroutine; 0 on success, -1 if it is unknown or ended."""
        if self._remote:
            return int(self._kernel.network().send(self, message))
        if self._done:
            return -1
        self._kernel.call(self._put, message)
        return 0

    def _put(self, message: Any) -> None:
        if self._done:
            return
        waiter = self._waiter
        if self._wait_kind == RECEIVING and waiter is not None and not waiter.done():
            wakeups = self._kernel._wakeups
            if wakeups._depth:  # a network read is handed up: it runs at the read's end
                wakeups.complete(waiter, message)
            else:
                waiter.set_result(message)
        else:
            self._mailbox.append(message)

    async def deliver(self, message: Any, timeout: float | None = None) -> int:
        """Acknowledged send: 1 once the message is in the target's mailbox, 0 on timeout,
        -1 if the target is unknown."""
        if self._remote:
            return int(await self._kernel.network().deliver(self, message, timeout))
        if self._done:
            return -1
        self._put(message)
        return 1

    async def receive(self, timeout: float | None = None, alarm_value: Any = None) -> Any:
        """The oldest message in the mailbox; waits for one up to ``timeout`` seconds
        (``alarm_value`` then). ``timeout <= 0`` never blocks."""
        if self._mailbox:
            return self._mailbox.popleft()
        if timeout is not None and timeout <= 0:
            return alarm_value
        return await self._block(RECEIVING, timeout, alarm_value)

    recv = receive

    async def suspend(self, timeout: float | None = None, alarm_value: Any = None) -> Any:
        """Sleep until `resume` (its update) or until ``timeout`` (``alarm_value``).
        Messages do not end a sleep. ``timeout <= 0`` lets the loop run one turn (its I/O and
        every other ready coroutine) and gives ``alarm_value``."""
        if timeout is not None and timeout <= 0:
            await switch()
            return alarm_value
        return await self._block(SUSPENDED, timeout, alarm_value)

    sleep = suspend

    def resume(self, update: Any = None) -> int:
        """Wake this coroutine if it is in `suspend`/`sleep`; ignored otherwise."""
        if self._remote:
            raise TypeError(f"resume() works on local coroutines only, not {self}")
        self._kernel.call(self._resume, update)
        return 0

    wakeup = resume

    def _resume(self, update: Any) -> None:
        waiter = self._waiter
        if self._wait_kind == SUSPENDED and waiter is not None and not waiter.done():
            waiter.set_result(update)
        else:
            logger.debug("resume of %s ignored: it is not sleeping", self)

    async def _block(self, kind: int, timeout: float | None, alarm_value: Any) -> Any:
        current = _current_coro.get()
        if current is not self:
            raise WrongThreadError(
                f"{self} can block only in itself, not in {current or 'a non-coroutine'}"
            )
        loop = self._kernel._loop
        waiter = loop.create_future()
        self._waiter, self._wait_kind = waiter, kind
        if timeout is not None:
            # One alarm per coroutine, kept armed between timed waits: a wait whose deadline
            # is not before the armed alarm reuses it (`_ring` re-arms it for the deadline
            # if it rings early), so a loop of timed receives costs no timer per receive.
            deadline = self._deadline = loop.time() + timeout
            alarm = self._alarm
            if alarm is None or self._alarm_at > deadline:
                if alarm is not None:
                    alarm.cancel()
                self._alarm = loop.call_at(deadline, self._ring)
                self._alarm_at = deadline
        try:
            result = await waiter
        except BaseException:
            # interrupted: a message that had already arrived goes back, first in line
            if kind == RECEIVING and waiter.done() and not waiter.cancelled():
                message = waiter.result()
                if message is not _TIMED_OUT and message is not _WOKEN:
                    self._mailbox.appendleft(message)
            raise
        finally:
            self._waiter, self._wait_kind = None, RUNNING
            self._deadline = 0.0  # the alarm stays armed: the next timed wait may reuse it
        return alarm_value if result is _TIMED_OUT else result

    def _ring(self) -> None:
        """The alarm: end the current timed wait if its deadline has come, else (a later
        wait reused the alarm) re-arm it for that wait's deadline."""
        self._alarm = None
        deadline = self._deadline
        waiter = self._waiter
        if not deadline or waiter is None:
            return  # no timed wait now
        if deadline <= self._alarm_at:
            _expire(waiter)
        else:
            self._alarm = self._kernel._loop.call_at(deadline, self._ring)
            self._alarm_at = deadline

    # -- control --------------------------------------------------------------------------

    def set_daemon(self, flag: bool = True) -> int:
        """Mark the calling coroutine as a daemon (it does not keep the process alive)."""
        if AsynCoro.cur_coro() is not self:
            return -1
        flag = bool(flag)
        if flag != self._daemon:
            self._daemon = flag
            self._kernel._count_live(-1 if flag else 1)
        return 0

    def terminate(self) -> int:
        """End the coroutine; its monitors see a normal finish."""
        if self._remote:
            return int(self._kernel.network().terminate(self))
        if self._done:
            return -1
        self._kernel.call(self._interrupt_with, TERMINATE)
        return 0

    def throw(self, *exc: Any) -> int:
        """Raise an exception in the coroutine at its current ``yield``/``await``:
        ``throw(ExcClass)``, ``throw(ExcClass, value)``, ``throw(instance)`` or an exc_info
        triple."""
        error = _as_exception(exc)
        if self._remote:
            return int(self._kernel.network().throw(self, error))
        if self._done:
            return -1
        self._kernel.call(self._interrupt_with, error)
        return 0

    def _interrupt_with(self, interrupt: Any) -> None:
        if self._done or TERMINATE in self._interrupts:
            return
        self._interrupts.append(interrupt)
        self._wake_for_interrupt()

    def _wake_for_interrupt(self) -> None:
        # complete, never cancel, what it waits on: cancellation is asyncio's (see driver.py)
        suspended = self._suspended_on
        if suspended is not None and not suspended.done():
            suspended.set_result(_WOKEN)

    # -- monitors -------------------------------------------------------------------------

    async def monitor(self, observed: Coro) -> int:
        """Make this coroutine the monitor of ``observed``: it gets a `MonitorException`
        message when ``observed`` ends."""
        if not isinstance(observed, Coro):
            raise TypeError(f"monitor() needs a Coro, not {observed!r}")
        if observed._remote:
            return int(await self._kernel.network().monitor(self, observed))
        return observed.notify(self)

    def notify(self, monitor: Coro) -> int:
        """Add ``monitor`` to the monitors of this (local) coroutine."""
        if self._remote:
            raise TypeError(f"notify() works on local coroutines only, not {self}")
        if not isinstance(monitor, Coro):
            raise TypeError(f"notify() needs a Coro, not {monitor!r}")
        self._kernel.call(self._add_monitor, monitor)
        return 0

    def _add_monitor(self, monitor: Coro) -> None:
        if self._done:
            self._tell_monitor(monitor)
        elif self._monitors is None:
            self._monitors = [monitor]
        elif monitor not in self._monitors:
            self._monitors.append(monitor)

    def _tell_monitor(self, monitor: Coro) -> None:
        if self._exc_info is None:
            info: tuple[Any, ...] = (StopIteration, self._value)
        else:
            info = self._exc_info
        if monitor._remote:
            self._kernel.network().send_monitor_exception(monitor, self, info)
        else:
            monitor.send(MonitorException(self, info))

    # -- results --------------------------------------------------------------------------

    async def finish(self, timeout: float | None = None) -> Any:
        """Wait (inside a coroutine) until this coroutine ends; its final value, or None if
        it has not ended within ``timeout`` seconds."""
        if self._remote:
            raise TypeError(f"finish() works on local coroutines only, not {self}")
        if not self._done:
            waiter = self._kernel._loop.create_future()
            if self._finish_waiters is None:
                self._finish_waiters = []
            self._finish_waiters.append(waiter)
            if timeout is None:
                await waiter
            else:
                await asyncio.wait([waiter], timeout=max(0.0, timeout))
                if not waiter.done():
                    waiter.cancel()
                    if self._finish_waiters is not None and waiter in self._finish_waiters:
                        self._finish_waiters.remove(waiter)
                    return None
        return self._value

    def value(self, timeout: float | None = None) -> Any:
        """Block the calling thread until the coroutine ends; its final value, or None if it
        has not ended within ``timeout`` seconds. Never call this from a coroutine: use
        ``yield coro.finish()``."""
        if self._done:
            return self._value
        return self._kernel.run_sync(self.finish(timeout))

    def is_alive(self) -> bool:
        """Whether this (local) coroutine has not ended yet."""
        return not self._done

    # -- lifecycle (loop thread) ----------------------------------------------------------

    def _uncaught(self, exc_info: tuple[object, ...]) -> None:
        """An exception ended this coroutine and no monitor hears of it: log it (a subclass
        that reports its end elsewhere overrides this)."""
        text = "".join(traceback.format_exception(*exc_info))  # type: ignore[call-overload]
        logger.warning("coroutine %s ended with an uncaught exception:\n%s", self, text)

    def _end(self, value: Any, exc_info: tuple[Any, ...] | None) -> None:
        self._value = value
        self._exc_info = exc_info
        self._task = None
        self._interrupts.clear()
        alarm, self._alarm = self._alarm, None
        if alarm is not None:  # would hold this coroutine alive until it rang
            alarm.cancel()
        self._kernel._retire(self)
        monitors, self._monitors = self._monitors, None
        if exc_info is not None and not monitors:
            self._uncaught(exc_info)
        self._done = True
        if monitors:
            for monitor in monitors:
                self._tell_monitor(monitor)
        waiters, self._finish_waiters = self._finish_waiters, None
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(value)
        self._mailbox.clear()
        if exc_info is None:
            self._body = None

    def _close_unstarted(self) -> None:
        if self._body is not None:
            self._body.close()
        self._done = True

    # -- hot swap -------------------------------------------------------------------------

    def hot_swappable(self, flag: bool) -> None:
        """Allow (or forbid) `hot_swap` to replace this coroutine's generator now."""
        self._swappable = bool(flag)

    def hot_swap(self, *args: object, **kwargs: object) -> int:
        """Replace this coroutine's generator function with ``target(*args, **kwargs)``.

        The new generator arrives as a `HotSwapException` at the coroutine's current
        ``yield`` once it is swappable and not in a nested call; letting the exception
        propagate accepts the swap. A coroutine that ended with an exception is restarted.
        The keyword form ``hot_swap(target=f, args=(...), kwargs={...})`` works too."""
        target, args, kwargs = split_target(args, kwargs)
        if self._remote:
            raise TypeError(f"hot_swap() works on local coroutines only, not {self}")
        if not inspect.isgeneratorfunction(target):
            raise NotACoroutineFunction(f"hot_swap() needs a generator function, not {target!r}")
        if self._is_async:
            raise TypeError(f"hot_swap() needs a generator coroutine; {self} is async")
        new_body = make_body(self, target, args, kwargs)
        self._kernel.call(self._swap_in, new_body)
        return 0

    def _swap_in(self, new_body: Any) -> None:
        if self._done:
            if self._exc_info is None:
                new_body.close()
                return
            self._done, self._exc_info, self._value = False, None, None
            self._body = new_body
            self._interrupts.clear()
            self._kernel._coros[self._id] = self
            self._kernel._spawn(self)
            return
        self._interrupts.append(HotSwapException(new_body))
        if self._swappable and self._depth == 0:
            self._wake_for_interrupt()

    # -- names ----------------------------------------------------------------------------

    def register(self, name: str | None = None) -> int:
        """Publish this coroutine under ``name`` (default: its name) so peers can locate it."""
        if self._remote:
            return -1
        result = self._kernel._register(name or self._name, self)
        if result == 0 and self._kernel._network_factory is not None:
            self._kernel.network()  # peers can only find it once we are on the network
        return result

    def unregister(self, name: str | None = None) -> int:
        if self._remote:
            return -1
        return self._kernel._unregister(name or self._name, self)

    @staticmethod
    async def locate(name: str, location: Any = None, timeout: float | None = None) -> Any:
        """Find the coroutine registered as ``name`` here or at a peer (None if not found)."""
        kernel = AsynCoro.instance()
        if location is None or (kernel.network_started and location == kernel.location):
            local = kernel.registered(name)
            if local is not None or location is not None:
                return local
        return await kernel.network().locate("coro", name, location, timeout)


async def wait_own(future: asyncio.Future[T]) -> T:
    """Await ``future`` as the calling coroutine's own wait (what `receive` does with its
    own): it goes on in the loop turn after ``future`` is done (in that same turn when a
    network read completed it, `core.wakeups`), where a future that is not its own costs
    two, and an interrupt (``throw``, ``terminate``) wakes it by completing
    ``future`` with a marker and is thrown in here. Outside a coroutine's own task, a plain
    await. For the runtime's replies (e.g. `Computation` waiting for its router)."""
    coro = _current_coro.get()
    if coro is None or coro._waiter is not None or coro._task is not asyncio.current_task():
        return await future
    coro._waiter, coro._wait_kind = future, WAITING
    try:
        return await future
    finally:
        coro._waiter, coro._wait_kind = None, RUNNING


def _as_exception(exc: tuple[Any, ...]) -> BaseException:
    if not exc:
        raise TypeError("throw() needs an exception")
    first = exc[0]
    if isinstance(first, BaseException):
        return first
    if isinstance(first, type) and issubclass(first, BaseException):
        if len(exc) > 1 and isinstance(exc[1], BaseException):
            return exc[1]
        return first(*exc[1:2])
    raise TypeError(f"throw() needs an exception class or instance, not {first!r}")
