"""How coroutines and channels pickle: to a reference ``(name, id, location)`` (channels:
``(name, location)``), never to their state.

Unpickling a reference in the process that owns the coroutine (channel) gives back the object
itself; anywhere else it gives a remote handle whose methods go through the network layer.
Pickling never starts the network: a local coroutine (channel) of a process whose network is
not running pickles with location None, which every process reads as "its own", so such a
reference is only meaningful inside the process that made it.
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


#: Remote handles already made, by (id, location), for the kernel in `_handles_kernel`: a
#: coroutine that keeps sending its own reference (``(coro, x)`` requests) gets one handle,
#: not one per message. Handles of remote coroutines carry no state of their own (every
#: method goes to the network), so sharing one is invisible; equality is by (id, location)
#: anyway. Bounded: cleared when it reaches `_HANDLES_MAX` entries.
_handles: dict[tuple[int, Any], Coro] = {}
_handles_kernel: list[AsynCoro | None] = [None]
_HANDLES_MAX = 1024


def coro_from_reference(name: str, coro_id: int, location: Any) -> Coro:
    kernel = AsynCoro._singleton_instance or AsynCoro.instance()
    if location is None or location == kernel.location:
        local = kernel._coros.get(coro_id)
        if local is not None:
            return local
        from discoro.core.coro import Coro

        dead = Coro._handle(name, coro_id, None)
        dead._remote, dead._done = False, True
        return dead
    key = (coro_id, location)
    handle = _handles.get(key)
    if handle is not None and handle._name == name and handle._kernel is kernel:
        return handle
    from discoro.core.coro import Coro

    if _handles_kernel[0] is not kernel or len(_handles) >= _HANDLES_MAX:
        _handles.clear()
        _handles_kernel[0] = kernel
    handle = _handles[key] = Coro._handle(name, coro_id, location)
    return handle


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
