"""`Channel`: named publish/subscribe fan-out to coroutines and other channels (reference 1.7).

A message sent to a channel goes (after the optional ``transform(name, msg)``, which may
rewrite it or return None to drop it) to every subscriber's mailbox; a subscriber is a `Coro`
or another `Channel`, so channels nest. ``deliver`` is the acknowledged form: it counts the
end recipients.

Invariants:
- Subscriber sets and waiters are touched on the loop thread only; `send` and `close` from
  another thread hop over. The per-process table ``kernel._channels`` (name -> channel) holds
  the first live channel of each name; it is how a pickled reference finds its channel again.
  `register` additionally makes the channel locatable by name.
- A subscriber whose ``send``/``deliver`` reports -1 (ended, unknown, closed) is dropped.
- Subscriptions never form a cycle among local channels (such a subscribe returns -1).
- A closed channel keeps no subscribers and refuses further use (-1).
- A handle with ``_remote`` true stands for a channel in another process (at ``_location``);
  its methods go through the network layer (``kernel.network()``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from discoro.core.coro import Coro
from discoro.core.kernel import AsynCoro
from discoro.core.located import NamedLocated
from discoro.core.log import logger
from discoro.core.waitqueue import WaitQueue

Transform = Callable[[str, Any], Any]
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _checked_transform(transform: Transform | None) -> Transform | None:
    """``transform`` if it is None or a callable taking exactly two positional parameters."""
    if transform is None:
        return None
    if not callable(transform):
        raise TypeError(f"a channel transform must be callable, not {transform!r}")
    try:
        params = list(inspect.signature(transform).parameters.values())
    except (TypeError, ValueError):  # no introspectable signature (some builtins): trust it
        return transform
    if len(params) != 2 or any(param.kind not in _POSITIONAL for param in params):
        raise TypeError(
            f"a channel transform takes exactly two parameters (name, message); "
            f"{transform!r} takes {len(params)}"
        )
    return transform


class Channel(NamedLocated):
    """``Channel(name, transform=None)``: a local channel named ``name``."""

    __slots__ = (
        "__weakref__",
        "_closed",
        "_kernel",
        "_location",
        "_name",
        "_registered",
        "_remote",
        "_subscribed",
        "_subscribers",
        "_transform",
    )

    def __init__(self, name: str, transform: Transform | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a channel name must be a non-empty str, not {name!r}")
        checked = _checked_transform(transform)
        self._init_state(AsynCoro.instance(), name, checked)
        table = self._kernel._channels
        if name in table:
            logger.warning("duplicate channel %r: the new one is not the registered one", name)
        else:
            table[name] = self

    def _init_state(self, kernel: AsynCoro, name: str, transform: Transform | None = None) -> None:
        self._kernel = kernel
        self._name = name
        self._location: Any = None
        self._remote = False
        self._transform = transform
        self._subscribers: dict[Any, None] = {}  # an insertion-ordered set
        self._subscribed = WaitQueue()  # deliver(n=...) calls waiting for subscribers
        self._registered = False
        self._closed = False

    @classmethod
    def _handle(cls, name: str, location: Any) -> Channel:
        """A handle for the channel ``name`` that lives at ``location`` (another process)."""
        handle = cls.__new__(cls)
        handle._init_state(AsynCoro.instance(), name)
        handle._location = location
        handle._remote = True
        return handle

    @classmethod
    def _gone(cls, name: str) -> Channel:
        """A local handle for a channel of this process that no longer exists."""
        handle = cls.__new__(cls)
        handle._init_state(AsynCoro.instance(), name)
        handle._closed = True
        return handle

    # -- identity -------------------------------------------------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        from discoro.core.references import channel_reference

        return channel_reference(self)

    # -- subscribers ----------------------------------------------------------------------

    async def subscribe(self, subscriber: Coro | Channel, timeout: float | None = None) -> int:
        """Add a coroutine or channel to the subscribers: 0, or -1 if that is impossible."""
        if not isinstance(subscriber, Coro | Channel):
            raise TypeError(f"a channel subscriber is a Coro or a Channel, not {subscriber!r}")
        if self._remote:
            network = self._kernel.network()
            return int(await network.channel_subscribe(self, subscriber, timeout))
        if self._closed:
            logger.warning("subscribe to closed channel %s refused", self)
            return -1
        if isinstance(subscriber, Coro) and not subscriber._remote and subscriber._done:
            return -1
        if isinstance(subscriber, Channel) and self._reachable_from(subscriber):
            logger.warning("subscribing %s to %s would make a cycle; refused", subscriber, self)
            return -1
        if subscriber not in self._subscribers:
            self._subscribers[subscriber] = None
            self._subscribed.wake_all()
        return 0

    async def unsubscribe(self, subscriber: Coro | Channel, timeout: float | None = None) -> int:
        """Remove a subscriber: 0, or -1 if it was not subscribed."""
        if self._remote:
            network = self._kernel.network()
            return int(await network.channel_unsubscribe(self, subscriber, timeout))
        if subscriber not in self._subscribers:
            return -1
        del self._subscribers[subscriber]
        return 0

    def _reachable_from(self, start: Channel) -> bool:
        """Whether messages sent to the local channel ``start`` could reach this channel."""
        seen: set[int] = set()
        stack = [start]
        while stack:
            channel = stack.pop()
            if channel is self or channel == self:
                return True
            if channel._remote or id(channel) in seen:
                continue
            seen.add(id(channel))
            stack.extend(sub for sub in channel._subscribers if isinstance(sub, Channel))
        return False

    # -- messages -------------------------------------------------------------------------

    def send(self, message: Any) -> int:
        """Send ``message`` to every subscriber (after the transform): 0, or -1 if the
        channel is closed (or, for a remote channel, its peer unknown)."""
        if self._remote:
            return int(self._kernel.network().channel_send(self, message))
        if self._closed:
            return -1
        if self._kernel.on_loop_thread():
            self._dispatch(message)
        else:
            self._kernel.call(self._dispatch_logged, message)
        return 0

    def _dispatch(self, message: Any) -> None:
        if self._closed:
            return
        if self._transform is not None:
            message = self._transform(self._name, message)
            if message is None:
                return
        failed = [sub for sub in list(self._subscribers) if sub.send(message) < 0]
        for sub in failed:
            self._drop(sub)

    def _dispatch_logged(self, message: Any) -> None:
        try:
            self._dispatch(message)
        except Exception:
            logger.exception("channel %s could not send %r", self, message)

    async def deliver(self, message: Any, timeout: float | None = None, n: int = 0) -> int:
        """Wait until at least ``n`` subscribers exist, then deliver ``message`` to all: the
        number of end recipients (nested channels count theirs), 0 on timeout, -1 if the
        channel is gone."""
        if self._remote:
            network = self._kernel.network()
            return int(await network.channel_deliver(self, message, timeout, n))
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while len(self._subscribers) < n and not self._closed:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return 0
            await self._subscribed.wait(remaining)
        if self._closed:
            return -1
        if self._transform is not None:
            message = self._transform(self._name, message)
            if message is None:
                return 0
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        return await self._deliver_to_all(message, remaining)

    async def _deliver_to_all(self, message: Any, timeout: float | None) -> int:
        total = 0
        others: list[Any] = []
        for sub in list(self._subscribers):
            if isinstance(sub, Coro) and not sub._remote:
                total += self._count(sub, await sub.deliver(message, timeout))
            else:
                others.append(sub)
        if others:
            results = await asyncio.gather(
                *(sub.deliver(message, timeout) for sub in others), return_exceptions=True
            )
            for sub, result in zip(others, results, strict=True):
                if isinstance(result, Exception):
                    logger.warning("channel %s: deliver to %s failed: %r", self, sub, result)
                    result = -1
                elif isinstance(result, BaseException):
                    raise result
                total += self._count(sub, result)
        return total

    def _count(self, sub: Any, result: int) -> int:
        if result < 0:
            self._drop(sub)
            return 0
        return result

    def _drop(self, sub: Any) -> None:
        if sub in self._subscribers:
            del self._subscribers[sub]
            logger.debug("channel %s dropped subscriber %s", self, sub)

    # -- management (local only) ----------------------------------------------------------

    def set_transform(self, transform: Transform | None) -> None:
        """Replace the transform (a callable ``(name, message)``, or None for none)."""
        if self._remote:
            raise TypeError(f"set_transform() works on local channels only, not {self}")
        self._transform = _checked_transform(transform)

    def register(self) -> int:
        """Make this channel locatable by its name: 0, or -1 if another channel of this
        process holds the name (or this is a remote handle, or closed)."""
        if self._remote or self._closed:
            return -1
        table = self._kernel._channels
        holder = table.setdefault(self._name, self)
        if holder is not self:
            return -1
        self._registered = True
        if self._kernel._network_factory is not None:
            self._kernel.network()  # peers can only find it once we are on the network
        return 0

    def unregister(self) -> int:
        """Stop being locatable: 0, or -1 if it was not registered."""
        if self._remote or not self._registered:
            return -1
        self._registered = False
        return 0

    def close(self) -> None:
        """Unregister, forget every subscriber and refuse further use."""
        if self._remote:
            raise TypeError(f"close() works on local channels only, not {self}")
        if self._closed:
            return
        self._closed, self._registered = True, False
        table = self._kernel._channels
        if table.get(self._name) is self:
            del table[self._name]
        self._kernel.call(self._forget_subscribers)

    def _forget_subscribers(self) -> None:
        self._subscribers.clear()
        self._subscribed.wake_all()

    @staticmethod
    async def locate(name: str, location: Any = None, timeout: float | None = None) -> Any:
        """Find the channel registered as ``name`` here or at a peer (None if not found)."""
        kernel = AsynCoro.instance()
        if location is None or (kernel.network_started and location == kernel.location):
            local = kernel._channels.get(name)
            found = local if local is not None and local._registered else None
            if found is not None or location is not None:
                return found
        # Not here (or asked for elsewhere): the network layer asks the peers, as for Coro.
        return await kernel.network().locate("channel", name, location, timeout)
