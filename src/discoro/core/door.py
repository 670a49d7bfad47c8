"""`NetworkDoor`: the narrow, public door from the network layer into the core (issue 9).

`discoro.net` (and the cluster layer above it) reach this process's coroutines and channels
only through these kernel methods and the public properties of `Coro`/`Located` (``id``,
``is_remote``, ``home_location``), never through the core's private attributes
(``kernel._coros``, ``coro._put``, ...); ``tests/test_layers.py`` checks it for ``net/``. So
the link and its handlers can change without touching the core, and the core's internals can
change without breaking the network layer.

Rules: every method here runs on the kernel's loop thread (the network's handlers do) and
never blocks; each is what the core itself does for a local caller, without the hop to the
loop thread that the public per-object methods (``send``, ``notify``) make from elsewhere.
A network that runs on a thread of its own (`discoro.net.transport_thread`) reaches this door
through a stand-in that runs the state-changing methods here on the loop thread, in the order
called, a batch of them per wake-up; the pure lookups (``local_coro``, ``has_ended``,
``local_channel``, ``rcis``) it may call from its own thread (dict reads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from discoro.core.channel import Channel
    from discoro.core.coro import Coro
    from discoro.core.idle_spin import IdleSpin
    from discoro.core.wakeups import SameTurnWakeups


class NetworkDoor:
    """Mixed into `AsynCoro`: the methods the network layer uses (loop thread only)."""

    __slots__ = ()
    _coros: dict[int, Coro]
    _channels: dict[str, Channel]
    _rcis: dict[str, object]
    _wakeups: SameTurnWakeups
    spin: IdleSpin

    # -- coroutines ---------------------------------------------------------------------------

    def local_coro(self, coro_id: int) -> Coro | None:
        """The live coroutine of this process with id ``coro_id``, or None."""
        return self._coros.get(coro_id)

    def deliver_local(self, coro: Coro, message: object) -> None:
        """Put ``message`` in the mailbox of the local coroutine ``coro`` now (a receiver
        waiting for it wakes: at `end_read` inside a read); nothing if ``coro`` has ended."""
        coro._put(message)

    def deliver_local_run(self, coro: Coro, messages: list[object]) -> None:
        """`deliver_local` of each of ``messages``, in order (a run a link received)."""
        put = coro._put
        for message in messages:
            put(message)

    def begin_read(self) -> None:
        """A received chunk is being handed up: a coroutine that a delivery (or `complete`)
        wakes meanwhile runs at `end_read`, in this loop turn (`core.wakeups`)."""
        self._wakeups.begin()

    def end_read(self) -> None:
        """The chunk is handed up: run the coroutines it woke (pair with `begin_read`);
        the loop polls a moment before it sleeps again (`core.idle_spin`)."""
        self._wakeups.end()
        self.spin.touch()

    def complete(self, future: asyncio.Future[object], value: object) -> None:
        """``future.set_result(value)``; between `begin_read` and `end_read`, the task
        waiting on it runs at `end_read` (a reply's waiter, like a receiver)."""
        self._wakeups.complete(future, value)

    def has_ended(self, coro: Coro) -> bool:
        """Whether the local coroutine ``coro`` has ended."""
        return coro._done

    def add_monitor_local(self, observed: Coro, monitor: Coro) -> None:
        """Make ``monitor`` a monitor of the local coroutine ``observed`` now; if
        ``observed`` has ended already, ``monitor`` is told of its end at once."""
        observed._add_monitor(monitor)

    def coro_handle(self, name: str, coro_id: int, location: object) -> Coro:
        """A handle for the coroutine ``name``/``coro_id`` of the process at ``location``."""
        from discoro.core.coro import Coro

        return Coro._handle(name, coro_id, location)

    def hold_sender(self, coro: Coro, make_hold: Callable[[], asyncio.Future[None]]) -> None:
        """Back-pressure: hold the local coroutine ``coro`` at its next suspension point until
        the future ``make_hold()`` is done (called only if ``coro`` is not held already)."""
        if coro._hold is None:
            coro._hold = make_hold()

    def run_local(self, func: Callable[..., object], *args: object) -> None:
        """Run ``func(*args)`` (a core call such as ``coro.terminate``) now, in order with the
        other calls through this door."""
        func(*args)

    # -- channels and RCIs --------------------------------------------------------------------

    def local_channel(self, name: str, registered: bool = False) -> Channel | None:
        """The live channel of this process named ``name`` (only a registered one when
        ``registered``), or None."""
        channel = self._channels.get(name)
        if channel is None or (registered and not channel._registered):
            return None
        return channel

    def drop_subscribers_at(self, location: object) -> None:
        """Every local channel forgets its subscribers (coroutines, channels) that live in
        the process at ``location`` (that peer went offline)."""
        for channel in list(self._channels.values()):
            gone = [
                sub for sub in channel._subscribers if sub._remote and sub._location == location
            ]
            for sub in gone:
                channel._drop(sub)

    @property
    def rcis(self) -> dict[str, object]:
        """This process's registered RCIs by name (kept by `discoro.net.rci`)."""
        return self._rcis
