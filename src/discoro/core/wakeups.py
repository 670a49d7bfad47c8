"""`SameTurnWakeups`: a coroutine whose message a network read just delivered runs in that
same loop turn, not in the next one (issue 9).

Completing a future that a task waits on schedules the task's wake-up with ``call_soon``:
the loop runs it only in its next turn, after another poll for I/O (an extra
``epoll_wait`` and a pass over the ready queue per hop of a message). While a read is
handed up (`begin` ... `end`, the network's ``Link`` around each received chunk), `complete`
takes the task's wake-up off the future instead, completes the future, and `end` runs the
wake-ups itself, in the order the futures were completed, once every message of the chunk
has been delivered (so the chunk's frames are all handed up before any woken coroutine runs,
and each coroutine still sees its messages in order).

Rules:
- Only a future whose one and only done-callback is a task's wake-up is taken; anything
  else (no waiter yet, a proxy, several callbacks) is completed as usual. What the task sees
  is the same in both cases (the future's result); only when its step runs differs.
- A wake-up is run exactly once: by `end` when no task is running (a protocol callback), by
  the loop (``call_soon``, as usual) when `end` runs inside a task (a task cannot step
  another) or when an earlier wake-up raised out of `end`.
- Batches nest (a read handed up while another is): the outermost `end` runs them.
- Loop thread only, like every other kernel method the network uses.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextvars import Context

_Task = asyncio.Task
_current_task = asyncio.current_task


class SameTurnWakeups:
    """The kernel's deferred task wake-ups while a network read is handed up."""

    __slots__ = ("_depth", "_loop", "_woken")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._depth = 0
        self._woken: list[
            tuple[Callable[[asyncio.Future[object]], object], Context, asyncio.Future[object]]
        ] = []

    @property
    def deferring(self) -> bool:
        """True while a read is handed up (wake-ups wait for `end`)."""
        return self._depth > 0

    def begin(self) -> None:
        self._depth += 1

    def complete(self, future: asyncio.Future[object], value: object) -> None:
        """``future.set_result(value)``; inside a batch, the waiting task runs at its end."""
        if self._depth:
            callbacks = future._callbacks  # (callback, context) pairs, or None
            if callbacks is not None and len(callbacks) == 1:
                wake, context = callbacks[0]
                if isinstance(getattr(wake, "__self__", None), _Task):
                    future.remove_done_callback(wake)
                    future.set_result(value)
                    self._woken.append((wake, context, future))
                    return
        future.set_result(value)

    def end(self) -> None:
        """Close a batch; the outermost one runs the wake-ups it deferred, in order."""
        self._depth -= 1
        if self._depth or not self._woken:
            return
        woken, self._woken = self._woken, []
        if _current_task(self._loop) is not None:  # inside a task: the loop steps them
            for wake, context, future in woken:
                self._loop.call_soon(wake, future, context=context)
            return
        for index, (wake, context, future) in enumerate(woken):
            try:
                context.run(wake, future)
            except BaseException:  # the task's step raised out (KeyboardInterrupt, ...)
                for rest in woken[index + 1 :]:
                    self._loop.call_soon(rest[0], rest[2], context=rest[1])
                raise
