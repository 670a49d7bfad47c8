"""The driver of generator coroutines: what ``yield X`` means (reference 1.3 and 1.4).

One coroutine, one asyncio task, one call stack of generators. Each step sends a value (or
throws an exception) into the innermost generator and looks at what it yields:

- a generator object: a nested call; it is pushed and runs inside the same coroutine, and its
  final value becomes the value of the caller's ``yield``;
- an awaitable (every blocking discoro call returns a coroutine object; asyncio futures and
  tasks too): the driver awaits it and sends back its result, or throws its exception;
- anything else: a cooperative switch point; the value itself is sent straight back.

Final value rule: a generator that ends by ``return v`` (v not None) yields ``v``; one that
ends with no value yields the last value it received from a ``yield``. ``raise
StopIteration(*args)`` from old code (a RuntimeError since PEP 479) counts as a return of
``args`` (one argument: that object; several: the tuple).

Interrupts (``throw``, ``terminate``, hot swap) arrive in ``coro._interrupt`` and are applied
between steps; a coroutine blocked in an await is woken for them by cancelling what it awaits
(see `Coro._wake_for_interrupt`).
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from discoro.errors import HotSwapException

if TYPE_CHECKING:
    from discoro.core.coro import Coro

TERMINATE = object()  # the interrupt that closes a coroutine
_NO_ARGS: tuple[Any, ...] = ()


@types.coroutine
def switch() -> Generator[None, None, None]:
    """Let every other ready coroutine run once."""
    yield


def legacy_stop_args(err: BaseException, gen: Any) -> tuple[Any, ...] | None:
    """The args of ``raise StopIteration(...)`` if ``err`` is PEP 479's wrapping of one raised
    in ``gen``'s own frame; None otherwise."""
    cause = err.__cause__
    if type(err) is not RuntimeError or not isinstance(cause, StopIteration):
        return None
    tb = cause.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = getattr(gen, "gi_code", None) or getattr(gen, "cr_code", None)
    if tb.tb_frame.f_code is not code:
        return None
    return cause.args


def final_value(args: tuple[Any, ...], last: Any) -> Any:
    if not args:
        return last
    return args[0] if len(args) == 1 else args


class Swapped(Exception):
    """Internal: the coroutine accepted a hot swap; ``args[0]`` is the new generator."""


async def drive(coro: Coro) -> Any:
    """Run ``coro``'s generator to its end and return its final value."""
    gen: Any = coro._body
    stack: list[tuple[Any, Any]] = []
    value: Any = None  # what the next step sends
    error: BaseException | None = None  # what the next step throws instead
    last: Any = None  # the last value the innermost generator received
    while True:
        interrupt = coro._interrupt
        if interrupt is not None:
            if interrupt is TERMINATE:
                for frame, _ in reversed(stack):
                    frame.close()
                gen.close()
                return stack[0][1] if stack else last
            if isinstance(interrupt, HotSwapException):
                if coro._swappable and not stack:
                    coro._interrupt = None
                    error = interrupt
            else:
                coro._interrupt = None
                error = interrupt
        coro._depth = len(stack)
        try:
            if error is None:
                yielded = gen.send(value)
            else:
                thrown, error = error, None
                yielded = gen.throw(thrown)
        except StopIteration as stop:
            result = final_value(stop.args, last)
        except HotSwapException as swap:
            if stack or not swap.args:
                raise
            gen, value, last = swap.args[0], None, None
            coro._swappable = False
            continue
        except BaseException as err:
            args = legacy_stop_args(err, gen)
            if args is None:
                if not stack:
                    raise
                gen, last = stack.pop()
                error = err
                continue
            result = final_value(args, last)
        else:
            kind = type(yielded)
            if kind is types.GeneratorType:
                stack.append((gen, last))
                gen, value, last = yielded, None, None
                continue
            try:
                if kind is types.CoroutineType or hasattr(yielded, "__await__"):
                    value = await yielded
                else:
                    value = yielded
                    await switch()
            except asyncio.CancelledError:
                # woken for an interrupt (applied at the top), or cancelled from outside,
                # which ends the coroutine like terminate()
                if coro._interrupt is None:
                    coro._interrupt = TERMINATE
                continue
            except BaseException as err:
                error = err
                continue
            last = value
            continue
        # the innermost generator has ended with ``result``
        if not stack:
            return result
        gen, last = stack.pop()
        value = last = result
