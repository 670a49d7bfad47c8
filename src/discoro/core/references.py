"""How coroutines and channels pickle: to a reference ``(name, id, location)`` (channels:
``(name, location)``), never to their state.

Unpickling a reference in the process that owns the coroutine (channel) gives back the object
itself; anywhere else it gives a remote handle whose methods go through the network layer.
Pickling a local coroutine that has no location yet starts the network (a reference that
leaves the process must say where it came from) unless nothing but this process will read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from discoro.core.kernel import AsynCoro

if TYPE_CHECKING:
    from discoro.core.channel import Channel
    from discoro.core.coro import Coro


def coro_reference(coro: Coro) -> tuple[Any, ...]:
    location = coro._location if coro._remote else coro._kernel.location
    return (coro_from_reference, (coro._name, coro._id, location))


def coro_from_reference(name: str, coro_id: int, location: Any) -> Coro:
    from discoro.core.coro import Coro

    kernel = AsynCoro.instance()
    if location is None or location == kernel.location:
        local = kernel._coros.get(coro_id)
        if local is not None:
            return local
        dead = Coro._handle(name, coro_id, None)
        dead._remote, dead._done = False, True
        return dead
    return Coro._handle(name, coro_id, location)


def channel_reference(channel: Channel) -> tuple[Any, ...]:
    location = channel._location if channel._remote else channel._kernel.location
    return (channel_from_reference, (channel._name, location))


def channel_from_reference(name: str, location: Any) -> Channel:
    from discoro.core.channel import Channel

    kernel = AsynCoro.instance()
    if location is None or location == kernel.location:
        local = kernel._channels.get(name)
        return local if local is not None else Channel._gone(name)
    return Channel._handle(name, location)
