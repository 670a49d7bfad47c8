"""`CategorizeMessages`: split a coroutine's mailbox into categories (reference 1.8).

Each categorizer ``fn(message)`` returns a category or None; the most recently added one is
tried first and the first non-None answer wins; a message no categorizer claims is in category
None. ``receive(category)`` returns the oldest message of that category, taking messages from
the coroutine's mailbox and putting aside (in arrival order) those of other categories.

Invariants:
- Used only by the coroutine whose mailbox it splits (its ``receive`` blocks that coroutine).
- No message is lost or reordered within its category: a message leaves the mailbox only to be
  returned or to be appended to its category's buffer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from discoro.core.coro import Coro

Categorizer = Callable[[Any], Hashable | None]
_TIMED_OUT = object()


class CategorizeMessages:
    """``CategorizeMessages(coro)``: categorised receiving for ``coro``."""

    __slots__ = ("_buffers", "_categorizers", "_coro")

    def __init__(self, coro: Coro) -> None:
        if not isinstance(coro, Coro):
            raise TypeError(f"CategorizeMessages needs a Coro, not {coro!r}")
        self._coro = coro
        self._categorizers: list[Categorizer] = []
        self._buffers: dict[Hashable | None, deque[Any]] = {}

    def add(self, categorize: Categorizer) -> None:
        """Add a categorizer; it is tried before those added earlier."""
        self._categorizers.insert(0, categorize)

    def remove(self, categorize: Categorizer) -> None:
        """Remove a categorizer (no effect if it was not added)."""
        if categorize in self._categorizers:
            self._categorizers.remove(categorize)

    def category(self, message: Any) -> Hashable | None:
        """The category of ``message`` (None if no categorizer claims it)."""
        for categorize in self._categorizers:
            found = categorize(message)
            if found is not None:
                return found
        return None

    async def receive(
        self,
        category: Hashable | None = None,
        timeout: float | None = None,
        alarm_value: Any = None,
    ) -> Any:
        """The oldest message of ``category``; waits up to ``timeout`` seconds for one
        (``alarm_value`` then; ``timeout <= 0`` never blocks)."""
        buffer = self._buffers.get(category)
        if buffer:
            return buffer.popleft()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            message = await self._coro.receive(remaining, _TIMED_OUT)
            if message is _TIMED_OUT:
                return alarm_value
            found = self.category(message)
            if found == category:
                return message
            self._buffers.setdefault(found, deque()).append(message)
