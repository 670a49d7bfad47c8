"""The driver: one loop that steps every coroutine, generator or ``async def`` alike.

A coroutine is a stack of frames. The bottom frame is its body (a generator, or the
coroutine object of an ``async def``); above it are nested generator calls and the
awaitables it is waiting on. Each step sends a value into (or throws an exception into)
the top frame and looks at what comes out:

- from a generator frame: a generator object is a nested call (pushed; its final value is
  what the caller's ``yield`` gets); an awaitable (every blocking discoro call returns a
  coroutine object; asyncio futures, tasks, coroutines too) is pushed and stepped; anything
  else is a cooperative switch point and the value itself is sent straight back
  (reference 1.3);
- from an awaitable frame: a future to wait on, or None (a bare switch), as asyncio's
  protocol says.

Back-pressure: a coroutine whose sends filled a network link has ``coro._hold`` set; at its
next yield (before anything else is done with what it yielded) it waits for that future, as
for its own discoro wait (an interrupt completes it; asyncio's cancellation is thrown in).
A hold set before the coroutine's first step is waited for before that step (a server holds
a new job until the reply that hands it out has gone to the socket).

A frame that ends hands its outcome (a value, or an exception) to the frame below it.

Final values (reference 1.4): ``return v`` gives ``v``; ending with no value gives the last
value the generator received; ``raise StopIteration(*args)`` in old code (a RuntimeError
since PEP 479) counts as returning ``args`` (one: that object; several: the tuple).

Two kinds of interruption, kept apart:

- discoro's interrupts (``throw``, ``terminate``, hot swap) wait in ``coro._interrupts`` and
  are applied where the coroutine gives up control: at every yield of a frame, and when it
  comes back from a switch or a wait. A suspended coroutine is woken for one by *completing*
  the future it waits on (`Coro._wake_for_interrupt`), never by cancelling anything. The
  interrupt is thrown in at the await that was waiting, so its cleanup runs (a receive puts
  its message back; a lock handed over passes on). Terminate closes the frames innermost
  first.
- asyncio's cancellation of the task behind the coroutine (``Task.cancel()``, which
  ``asyncio.timeout``, ``wait_for`` and ``TaskGroup`` use) is passed on exactly as a plain
  task passes it on: the future being awaited is cancelled and the frames see a
  CancelledError at that await, and ``cancelling()``/``uncancel()`` are the task's own.

The driver never cancels the task. A future that is not ours is awaited through a proxy, so
a discoro interrupt leaves it alone; only asyncio's cancellation reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import types
from typing import TYPE_CHECKING, Any

from discoro.errors import HotSwapException

_current_coro: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "discoro_current_coro", default=None
)

if TYPE_CHECKING:
    from collections.abc import Generator

    from discoro.core.coro import Coro

TERMINATE = object()  # the interrupt that closes a coroutine

GeneratorType = types.GeneratorType
CoroutineType = types.CoroutineType
CancelledError = asyncio.CancelledError
isfuture = asyncio.isfuture


class _Terminated(Exception):
    """Raised inside the driver (never in a frame) when TERMINATE is the interrupt to apply."""


@types.coroutine
def switch() -> Generator[None, None, None]:
    """Let the loop run one turn (its I/O and every ready callback) before going on."""
    yield


@types.coroutine
def suspend_on(future: Any) -> Generator[Any, None, None]:
    """Hand ``future`` to the task: it resumes us when the future is done."""
    future._asyncio_future_blocking = True
    yield future


def legacy_stop_args(err: BaseException, frame: Any) -> tuple[Any, ...] | None:
    """The args of ``raise StopIteration(...)`` if ``err`` is PEP 479's wrapping of one raised
    in ``frame``'s own code; None otherwise."""
    cause = err.__cause__
    if type(err) is not RuntimeError or not isinstance(cause, StopIteration):
        return None
    tb = cause.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = getattr(frame, "gi_code", None) or getattr(frame, "cr_code", None)
    if code is None or tb.tb_frame.f_code is not code:
        return None
    return cause.args


def final_value(args: tuple[Any, ...], last: Any) -> Any:
    if not args:
        return last
    return args[0] if len(args) == 1 else args


def outcome(
    stop: BaseException, frame: Any, is_gen: bool, last: Any
) -> tuple[Any, BaseException | None]:
    """What a frame that stopped with ``stop`` hands the frame below it: ``(value, None)``
    when it returned, ``(None, error)`` when it raised."""
    if isinstance(stop, StopIteration):
        return (final_value(stop.args, last) if is_gen else stop.value), None
    args = legacy_stop_args(stop, frame)
    if args is not None:
        return final_value(args, last), None
    return None, stop


def swapped_in(error: BaseException | None) -> Any:
    """The new generator if ``error``, out of the body, is a hot swap it let through."""
    if type(error) is HotSwapException and error.args and type(error.args[0]) is GeneratorType:
        return error.args[0]
    return None


def body_outcome(
    value: Any, error: BaseException | None, last: Any
) -> tuple[Any, tuple[Any, ...] | None]:
    """``(result, exc_info)`` of a coroutine whose body ended with ``value`` or ``error``.
    GeneratorExit and an uncaught asyncio cancellation end it like terminate (normally,
    with the last value its body received)."""
    if error is None:
        return value, None
    if isinstance(error, GeneratorExit | CancelledError):
        return last, None
    return None, (type(error), error, error.__traceback__)


def take_interrupt(coro: Coro) -> BaseException | object | None:
    """The interrupt to apply now (TERMINATE, or an exception to throw), or None."""
    interrupts = coro._interrupts
    if TERMINATE in interrupts:
        return TERMINATE
    for index, interrupt in enumerate(interrupts):
        if isinstance(interrupt, HotSwapException) and not (coro._swappable and coro._depth == 0):
            continue  # it waits until the coroutine is swappable, outside nested calls
        del interrupts[index]
        return interrupt
    return None


def interrupt_now(coro: Coro, unawaited: object = None) -> BaseException | None:
    """The exception to throw into the top frame now, or None; raises `_Terminated` when the
    coroutine is to end. ``unawaited``, what the frame just yielded, is closed first: it will
    never be awaited (a nested generator is left alone: it may be the caller's own)."""
    interrupt = take_interrupt(coro)
    if interrupt is None:
        return None
    if unawaited is not None and type(unawaited) is not GeneratorType:
        close = getattr(unawaited, "close", None)
        if close is not None:
            close()
    if interrupt is TERMINATE:
        raise _Terminated
    assert isinstance(interrupt, BaseException)  # throw and hot swap queue exceptions only
    return interrupt


async def wait_foreign(coro: Coro, future: asyncio.Future[Any]) -> None:
    """Wait until ``future`` (not ours) is done, or until an interrupt wakes us.

    We wait on a proxy, so an interrupt never touches ``future``. When asyncio cancels our
    task, the cancellation goes on to ``future`` as a plain task would pass it on: if the
    future takes it we go on waiting (a task may still end otherwise); if it is already done,
    the CancelledError is raised here, at the await."""
    future._asyncio_future_blocking = False  # taken, as a task takes it (an await checks it)
    loop = coro._kernel._loop
    while True:
        proxy = loop.create_future()

        def done(_: object, proxy: asyncio.Future[None] = proxy) -> None:
            if not proxy.done():
                proxy.set_result(None)

        future.add_done_callback(done)
        coro._suspended_on = proxy
        try:
            await suspend_on(proxy)
            return
        except CancelledError as cancelled:
            if not future.cancel(cancelled.args[0] if cancelled.args else None):
                raise
            if future.done():
                return
        finally:
            coro._suspended_on = None
            future.remove_done_callback(done)


async def wait_hold(coro: Coro, unawaited: object) -> BaseException | None:
    """Wait for the coroutine's back-pressure hold; asyncio's cancellation if it came
    meanwhile (then ``unawaited``, what the frame yielded, is closed: it never runs)."""
    hold = coro._hold
    coro._hold = None
    if hold is None or hold.done():
        return None
    coro._suspended_on = hold
    try:
        await suspend_on(hold)
    except CancelledError as cancelled:
        if unawaited is not None and type(unawaited) is not GeneratorType:
            close = getattr(unawaited, "close", None)
            if close is not None:
                close()
        return cancelled
    finally:
        coro._suspended_on = None
    return None


async def run(coro: Coro) -> None:
    """The body of the task behind ``coro``: step it to its end, then end it."""
    _current_coro.set(coro)  # in this task's own copy of the context
    frame: Any = coro._body  # the top frame
    is_gen = type(frame) is GeneratorType
    last: Any = None  # the last value the top generator frame received
    stack: list[tuple[Any, bool, Any]] = []  # the frames under ``frame``, with their is_gen, last
    value: Any = None  # what the next step sends in
    error: BaseException | None = None  # what the next step throws in instead
    result: Any = None
    exc_info: tuple[Any, ...] | None = None  # how the body ended, for coro._end
    interrupts = coro._interrupts
    try:
        if coro._hold is not None:  # held before its first step (e.g. until a reply is out)
            error = await wait_hold(coro, None)
        if interrupts and error is None:  # interrupted before its first step
            error = interrupt_now(coro)
        while True:
            # 1. step the top frame; a frame that ends hands its outcome down
            try:
                if error is None:
                    out = frame.send(value)
                else:
                    out = frame.throw(error)
                    error = None
            except BaseException as stop:
                value, error = outcome(stop, frame, is_gen, last)
                if stack:
                    if is_gen:
                        coro._depth -= 1
                    frame, is_gen, last = stack.pop()
                    if is_gen and error is None:
                        last = value
                    continue
                new_body = swapped_in(error) if is_gen else None
                if new_body is not None:  # the body let the swap through: the new one runs
                    frame, value, last, error = new_body, None, None, None
                    coro._swappable = False
                    continue
                result, exc_info = body_outcome(value, error, last)
                break

            # 2. every yield is where a held sender waits and where interrupts apply
            if coro._hold is not None and (error := await wait_hold(coro, out)) is not None:
                value = None
                continue
            if interrupts and (error := interrupt_now(coro, out)) is not None:
                value = None
                continue

            # 3. what the frame yielded: a call to step, or something to wait for
            if is_gen:
                kind = type(out)
                if kind is CoroutineType:
                    # fast path: most calls (a receive with mail waiting) finish at once
                    try:
                        inner = out.send(None)
                    except StopIteration as stop:
                        value = last = stop.value
                        continue
                    except BaseException as err:
                        error = err
                        continue
                    stack.append((frame, True, last))
                    frame, is_gen, out = out, False, inner  # it waits: handled below
                elif kind is GeneratorType:  # a nested call
                    stack.append((frame, True, last))
                    coro._depth += 1
                    frame, value, last = out, None, None
                    continue
                elif not isfuture(out):
                    awaitable = getattr(out, "__await__", None)
                    if awaitable is not None:
                        stack.append((frame, True, last))
                        frame, is_gen, value = awaitable(), False, None
                        continue
                    value = last = out  # a plain value: a switch, then it comes straight back
                    out = None
            if not is_gen:  # an awaitable frame reads what it waited for itself
                value = None
                if out is not None and not isfuture(out):
                    error = RuntimeError(
                        f"{coro} awaited something that yielded {out!r}, not a future"
                    )
                    continue

            # 4. give up control: one loop turn (out is None) or until the future is done;
            # an interrupt that applies before (the call interrupted its own coroutine) or
            # after (it arrived meanwhile) is thrown in instead
            if not interrupts or (error := interrupt_now(coro)) is None:
                try:
                    if out is None:
                        await switch()
                    elif out is coro._waiter:  # our own future (a discoro wait): no proxy
                        coro._suspended_on = out
                        await suspend_on(out)
                    else:
                        await wait_foreign(coro, out)
                except CancelledError as cancelled:  # asyncio cancelled the task: pass it on
                    error = cancelled
                    continue
                finally:
                    coro._suspended_on = None
                if interrupts:
                    error = interrupt_now(coro)
            if error is not None:
                value = None
                continue
            if is_gen and out is not None:  # a generator yielded the future itself
                try:
                    value = last = out.result()
                except BaseException as err:
                    error = err
    except _Terminated:  # close every frame, innermost first
        result = stack[0][2] if stack else last
        for closing in [frame, *(entry[0] for entry in reversed(stack))]:
            with contextlib.suppress(BaseException):  # closing must go on
                closing.close()
    coro._end(result, exc_info)
