"""`MessageHandler`: a coroutine without a body, whose messages are handled as they arrive.

For the runtime's own dispatchers (a scheduler, a client's router) whose every step is "take
the next message, act on it, never wait": a task woken for each message would cost a loop
turn per message (and one more for whoever it wakes next). A `MessageHandler` is a `Coro`
to everyone else (it has an id, a name and a location; it can be registered, located,
pickled by reference, sent to and monitored), but a message put in its mailbox is passed to
``handle(message)`` at once, on the loop thread.

Invariants: messages are handled one at a time, in the order they arrive: one that arrives
while ``handle`` runs (``handle`` sends to itself, or to another handler that sends back)
waits in the mailbox until that call returns, so ``handle`` is never re-entered. An
exception from ``handle`` is logged once and the next message is handled. It is a daemon
(it never keeps the process alive) and ends only by `terminate` (its monitors then see a
normal finish); it never blocks, so ``receive``/``sleep`` are not for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discoro.core.coro import Coro, _ids
from discoro.core.kernel import AsynCoro
from discoro.core.log import logger

if TYPE_CHECKING:
    from collections.abc import Callable


class MessageHandler(Coro):
    """``MessageHandler(handle, name)``: each message sent to it is ``handle(message)``."""

    __slots__ = ("_handle_message", "_handling")

    def __init__(self, handle: Callable[[object], None], name: str = "handler") -> None:
        kernel = AsynCoro._singleton_instance or AsynCoro.instance()
        self._init_state(kernel, name, next(_ids), None, False)
        self._daemon = True
        self._handle_message = handle
        self._handling = False
        # between messages it waits for the next one: blocked, for `AsynCoro._runnable`
        self._suspended_on = kernel._loop.create_future()
        kernel._coros[self._id] = self

    def _put(self, message: object) -> None:
        if self._done:
            return
        if self._handling:  # sent while a message is handled: after it, in order
            self._mailbox.append(message)
            return
        self._handling = True
        try:
            while True:
                try:
                    self._handle_message(message)
                except Exception:
                    logger.exception("%s failed to handle %r", self, message)
                if self._done or not self._mailbox:
                    break
                message = self._mailbox.popleft()
        finally:
            self._handling = False

    def _wake_for_interrupt(self) -> None:
        """Nothing to wake: a handler never blocks (``throw`` has no effect on it)."""

    def terminate(self) -> int:
        """End the handler (callable from any thread); -1 if it has ended already."""
        if self._done:
            return -1
        self._kernel.call(self._finish_now)
        return 0

    def _finish_now(self) -> None:
        if not self._done:
            self._end(None, None)
