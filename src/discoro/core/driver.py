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

Final values (reference 1.4): ``return v`` gives ``v``; ending with no value gives the last
value the generator received; ``raise StopIteration(*args)`` in old code (a RuntimeError
since PEP 479) counts as returning ``args`` (one: that object; several: the tuple).

Interrupts (``throw``, ``terminate``, hot swap) wait in ``coro._interrupts`` and are applied
where the coroutine gives up control: at every yield of a generator, before it suspends on a
future or switches, when it wakes, or at once when it is suspended (its wait is cancelled).
They are thrown in at the await that was waiting, so its cleanup runs (a receive puts its
message back; a lock handed over passes on). Terminate closes the frames innermost first.
The task behind a coroutine is never cancelled by us, and a future it awaits that is not
ours is never cancelled either: we wait on a proxy of it.
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


@types.coroutine
def switch() -> Generator[None, None, None]:
    """Let every other ready coroutine run once."""
    yield


@types.coroutine
def suspend_on(future: asyncio.Future[Any]) -> Generator[Any, None, None]:
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


def take_interrupt(coro: Coro) -> Any:
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


def _proxy_for(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> Any:
    proxy = loop.create_future()

    def done(_: Any) -> None:
        if not proxy.done():
            proxy.set_result(None)

    future.add_done_callback(done)
    return proxy, done


async def run(coro: Coro) -> None:
    """The body of the task behind ``coro``: step it to its end, then end it."""
    frame: Any = coro._body
    is_gen = type(frame) is GeneratorType
    stack: list[tuple[Any, bool, Any]] = []  # the frames under ``frame``
    value: Any = None  # what the next step sends in
    error: BaseException | None = None  # what the next step throws in instead
    last: Any = None  # the last value the top generator frame received
    loop = coro._kernel._loop
    result: Any = None
    exc_info: tuple[Any, ...] | None = None
    terminated = False
    interrupts = coro._interrupts
    _current_coro.set(coro)  # in this task's own copy of the context
    if interrupts:  # interrupted before its first step
        interrupt = take_interrupt(coro)
        if interrupt is TERMINATE:
            frame.close()
            coro._end(None, None)
            return
        error = interrupt
    while True:
        try:
            if error is None:
                out = frame.send(value)
            else:
                thrown, error = error, None
                out = frame.throw(thrown)
        except StopIteration as stop:
            done_value = final_value(stop.args, last) if is_gen else stop.value
            if not stack:
                result = done_value
                break
            if is_gen:
                coro._depth -= 1
            frame, is_gen, last = stack.pop()
            value = done_value
            if is_gen:
                last = done_value
            continue
        except HotSwapException as swap:
            if stack or not is_gen or not swap.args or type(swap.args[0]) is not GeneratorType:
                if not stack:
                    exc_info = (type(swap), swap, swap.__traceback__)
                    break
                if is_gen:
                    coro._depth -= 1
                frame, is_gen, last = stack.pop()
                error = swap
                continue
            frame, value, last = swap.args[0], None, None
            coro._swappable = False
            continue
        except BaseException as err:
            args = legacy_stop_args(err, frame)
            if args is not None:
                error = None
                stop_value = final_value(args, last)
                if not stack:
                    result = stop_value
                    break
                if is_gen:
                    coro._depth -= 1
                frame, is_gen, last = stack.pop()
                value = stop_value
                if is_gen:
                    last = stop_value
                continue
            if not stack:
                if isinstance(err, GeneratorExit | CancelledError):
                    result = last
                else:
                    exc_info = (type(err), err, err.__traceback__)
                break
            if is_gen:
                coro._depth -= 1
            frame, is_gen, last = stack.pop()
            error = err
            continue

        # ``out`` came out of the top frame. Every yield is where interrupts apply: nothing
        # from here to the switch or suspension below gives up control.
        if interrupts:
            interrupt = take_interrupt(coro)
            if interrupt is not None:
                close = getattr(out, "close", None)
                if close is not None and type(out) is not GeneratorType:
                    close()  # the awaitable it yielded will not be awaited
                if interrupt is TERMINATE:
                    terminated = True
                    break
                error = interrupt
                continue
        if is_gen:
            kind = type(out)
            if kind is GeneratorType:
                stack.append((frame, is_gen, last))
                coro._depth += 1
                frame, value, last = out, None, None
                continue
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
                stack.append((frame, is_gen, last))
                frame, is_gen, out = out, False, inner  # handled below as its output
                if interrupts:  # the call itself interrupted its coroutine before blocking
                    interrupt = take_interrupt(coro)
                    if interrupt is not None:
                        if interrupt is TERMINATE:
                            terminated = True
                            break
                        error = interrupt
                        continue
            elif not isfuture(out):
                awaitable = getattr(out, "__await__", None)
                if awaitable is not None:
                    stack.append((frame, is_gen, last))
                    frame, is_gen, value = awaitable(), False, None
                    continue
                # a plain value: a switch point, the value comes straight back
                await switch()
                value = last = out
                continue
        if not is_gen:
            if out is None:  # a bare yield inside an awaitable: a switch
                await switch()
                value = None
                continue
            if not isfuture(out):
                error = RuntimeError(f"{coro} awaited something that yielded {out!r}, not a future")
                continue

        # suspend on the future ``out`` until it is done or an interrupt arrives
        own = out is coro._waiter
        if own:
            target, callback = out, None
        else:
            target, callback = _proxy_for(loop, out)
        coro._suspended_on = target
        try:
            await suspend_on(target)
        except CancelledError:
            if callback is not None:
                out.remove_done_callback(callback)
            if not interrupts:  # cancelled from outside: end like terminate
                interrupts.append(TERMINATE)
            interrupt = take_interrupt(coro)
            if interrupt is TERMINATE:
                terminated = True
                break
            error = interrupt
            value = None
            continue
        finally:
            coro._suspended_on = None
        if interrupts:  # arrived while we were ready to run: apply before the result
            interrupt = take_interrupt(coro)
            if interrupt is not None:
                if interrupt is TERMINATE:
                    terminated = True
                    break
                error = interrupt
                continue
        if is_gen:  # a generator yielded the future itself: it gets the result
            if out.cancelled():
                error = CancelledError()
            else:
                error = out.exception()
                value = None if error is not None else out.result()
                if error is None:
                    last = value
        else:
            value = None

    if terminated:  # close every frame, innermost first
        result = stack[0][2] if stack and stack[0][1] else last
        for closing in [frame, *(entry[0] for entry in reversed(stack))]:
            with contextlib.suppress(BaseException):  # closing must go on
                closing.close()
    coro._end(result, exc_info)
