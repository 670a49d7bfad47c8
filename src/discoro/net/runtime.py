"""`network_of`: a kernel's network runtime as the net layer's own `Network` type.

The kernel holds its network as the core's `NetworkRuntime` Protocol (the core cannot name a
class of a layer above it). The net layer is the one that installs the factory, so the object
is always a `Network`, or a `ThreadedNetwork` in front of one that runs on a transport thread
(`discoro.net.threaded`): code at or above the net layer that needs more than the Protocol
(peers, requests) takes the `Network` from here instead of narrowing by hand.

Rule: with a transport thread, the `Network`'s state belongs to that thread. Code on another
thread may read it (a peer's ``online``, ``ended_coros``: single reads of dicts and
attributes), but changes it, or calls anything that does, only through `on_network` (in
order with every other call into the network), `ask_network` (the same, for a result) or
`run_on_network` (for an awaitable).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, cast

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from discoro.core.kernel import AsynCoro
    from discoro.net.held import LoopHeld
    from discoro.net.network import Network
    from discoro.net.threaded import ThreadedNetwork

T = TypeVar("T")


def network_of(kernel: AsynCoro) -> Network:
    """``kernel.network()`` (built and started on first use), typed as the net layer's;
    with a transport thread, the `Network` behind its `ThreadedNetwork`."""
    network = kernel.network()
    threaded = _threaded(network)
    return threaded.inner if threaded is not None else cast("Network", network)


def network_thread(kernel: AsynCoro) -> ThreadedNetwork | None:
    """The `ThreadedNetwork` of ``kernel``, or None when its network runs on its loop."""
    return _threaded(kernel.network())


def held_sends(kernel: AsynCoro) -> ThreadedNetwork | LoopHeld:
    """Where ``kernel``'s core holds sends (`discoro.net.held`): its transport thread, or
    (its network on its loop) a new `LoopHeld`, which its caller keeps."""
    threaded = _threaded(kernel.network())
    if threaded is not None:
        return threaded
    from discoro.net.held import LoopHeld

    return LoopHeld()


def _threaded(network: object) -> ThreadedNetwork | None:
    from discoro.net.threaded import ThreadedNetwork

    return network if isinstance(network, ThreadedNetwork) else None


def on_network(kernel: AsynCoro, func: Callable[..., object], *args: object) -> None:
    """Run ``func(*args)`` on the network's loop: in order with other calls into it (now,
    when that is the calling thread's loop)."""
    threaded = network_thread(kernel)
    if threaded is not None:
        threaded.call_soon(func, *args)
    else:
        kernel.call(func, *args)


def ask_network(kernel: AsynCoro, func: Callable[..., T], *args: object) -> T:
    """``func(*args)`` run on the network's loop (with a transport thread: in order, this
    thread waiting for it; else here and now)."""
    threaded = network_thread(kernel)
    return threaded.call_wait(func, *args) if threaded is not None else func(*args)


async def run_on_network(kernel: AsynCoro, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` (made by the `Network`) on the network's loop."""
    threaded = network_thread(kernel)
    return await (threaded.run(awaitable) if threaded is not None else awaitable)
