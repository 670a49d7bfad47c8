"""`ThreadedNetwork`: the core's view of a `Network` that runs on a transport thread (D10).

The kernel holds this where it would hold the `Network` (it has the core's `NetworkRuntime`
shape); the `Network` itself (``inner``) runs on the transport thread
(`discoro.net.transport_thread`), so a job that blocks the core loop cannot keep it from
taking in messages and files.

Rules:
- Every call from another thread into the network goes through one ordered queue that the
  transport loop drains: the first call into an empty queue wakes the loop (one
  ``call_soon_threadsafe``), later ones ride along. So sends, terminates and requests reach
  the network in the order they were made (per-peer FIFO as with one loop), and a burst of
  sends costs one wake-up.
- User data is pickled in the caller's thread (``send``, ``deliver``, ``throw``, channel
  sends, a monitored coroutine's end), as with one loop: later changes to an object do not
  travel. (``channel_deliver`` and subscriptions pickle on the transport thread.)
- Sync calls return what the one-loop network returns for a message it could queue (0);
  a message the network cannot queue after all is dropped there with a log line.
- Async calls run on the transport loop; the caller's coroutine waits on its own loop
  (cancelling it cancels the work there).
- Back-pressure: a core coroutine whose send leaves the link (plus what waits in the queue)
  over ``flow.SEND_HIGH`` is charged for it and, once its charge passes ``flow.HOLD_SHARE``
  (`flow.Charges`), held at its next suspension point until the link drained to
  ``flow.SEND_LOW``; a sender on any other thread waits in ``send`` (TimeoutError after
  ``flow.THREAD_SEND_TIMEOUT`` s), as with one loop.
- The kernel's shutdown stops the network on its thread, then the thread's loop.
- Only the transport loop polls after network traffic (`core.idle_spin`); the core loop
  sleeps as before: two polling loops in one process contend for the GIL (measured: round
  trip p99 1.6x and the server's CPU per round trip 1.4x those of the transport loop alone).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import pickle
import threading
from typing import TYPE_CHECKING, TypeVar, cast

from discoro.core.log import logger
from discoro.errors import ShutdownError
from discoro.net import flow, handlers, payloads
from discoro.net.held import HELD, Held, HeldSend
from discoro.net.network import Network
from discoro.net.sending import encode_delivery
from discoro.net.transport_thread import CoreHop, TransportThread, bridge_future
from discoro.wire.messages import Message, trusted_message

if TYPE_CHECKING:
    import os
    from collections.abc import Awaitable, Callable, Sequence

    from discoro.core.channel import Channel
    from discoro.core.coro import Coro
    from discoro.core.kernel import AsynCoro
    from discoro.net.location import Location

T = TypeVar("T")
Call = tuple["Callable[..., object]", tuple[object, ...]]
#: Seconds a blocking call into the network (``set_dest_path``, ...) waits for its thread.
CALL_TIMEOUT = 30.0
_PLAIN_TYPES = payloads.PLAIN_TYPES
_plain = payloads.plain


def _cancel(bridge: concurrent.futures.Future[T], started: list[asyncio.Task[T]]) -> None:
    """(Network loop.) The caller of `ThreadedNetwork.run` stopped waiting: cancel."""
    if started:
        started[0].cancel()
    else:
        bridge.cancel()  # not started yet: `_start` will see it


class ThreadedNetwork:
    """A `Network` on its own thread, as the core sees it (see the module docstring)."""

    def __init__(self, kernel: AsynCoro, options: dict[str, object]) -> None:
        self.kernel = kernel
        self.transport = TransportThread()
        self.hop = CoreHop(kernel, self.transport)
        kernel.spin.most = 0.0  # the transport loop polls, the core does not (module text)
        self._lock = threading.Lock()
        self._queue: list[Call] = []
        self._queued_bytes = 0  # user data sent and not yet handed to the network
        self._rooms: dict[Location, concurrent.futures.Future[None]] = {}  # see `_room`
        # per link: its senders' charges while it is over SEND_HIGH, and the drain that ends
        # them (see `_charge`)
        self._charges: dict[Location, tuple[concurrent.futures.Future[None], flow.Charges]] = {}
        self.wakeups = 0  # times the queue woke the transport loop (a test reads it)
        self._started: asyncio.Future[None] | None = None
        kernel.add_shutdown_hook(self._stop_thread)  # runs last: after the network's stop
        core_loop = kernel.loop

        async def build() -> Network:  # loop-bound objects are made on their loop
            return Network(cast("AsynCoro", self.hop), dict(options), core_loop=core_loop)

        try:
            self.inner: Network = self.transport.run_sync(build())
        except BaseException:
            self.transport.stop()
            raise
        self.inner.intake = self.hop  # what the links take in for the core is weighed
        self.held = Held(self.inner.send)  # sends the core may still take back

    # -- the ordered queue ----------------------------------------------------------------------

    def _enqueue(self, func: Callable[..., object], *args: object, size: int = 0) -> None:
        with self._lock:
            self._queue.append((func, args))
            self._queued_bytes += size
            wake = len(self._queue) == 1
        if wake:
            self.wakeups += 1
            try:
                self.transport.call(self._drain)
            except ShutdownError:  # the network has stopped: the process is ending
                logger.debug("network call %r dropped: the network has stopped", func)

    def _drain(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
            self._queued_bytes = 0
        for func, args in batch:
            try:
                func(*args)
            except Exception:
                logger.exception("network call %r failed", func)

    def call_soon(self, func: Callable[..., object], *args: object) -> None:
        """Run ``func(*args)`` on the network's loop, in order with every other call into
        it (now, on that loop's thread)."""
        if self.transport.on_thread():
            func(*args)
        else:
            self._enqueue(func, *args)

    def call_wait(self, func: Callable[..., T], *args: object) -> T:
        """``func(*args)`` run on the network's loop, in order; blocks this thread for it
        (briefly: nothing there waits for user code)."""
        if self.transport.on_thread():
            return func(*args)
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(func(*args))
            except BaseException as exc:
                result.set_exception(exc)

        self._enqueue(run)
        return result.result(CALL_TIMEOUT)

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` on the network's loop, started in order with the other calls;
        if the caller stops waiting (cancelled, terminated), the work there is cancelled."""
        if self.transport.on_thread():
            return await awaitable
        bridge: concurrent.futures.Future[T] = concurrent.futures.Future()
        started: list[asyncio.Task[T]] = []
        self._enqueue(self._start, awaitable, bridge, started)
        try:
            return await asyncio.wrap_future(bridge)
        finally:
            if not bridge.done():
                self.call_soon(_cancel, bridge, started)

    def _start(
        self,
        awaitable: Awaitable[T],
        bridge: concurrent.futures.Future[T],
        started: list[asyncio.Task[T]],
    ) -> None:
        async def runner() -> T:
            return await awaitable

        if not bridge.set_running_or_notify_cancel():  # the caller gave up meanwhile
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
            return
        task = self.transport.loop.create_task(runner())
        started.append(task)

        def done(task: asyncio.Task[T]) -> None:
            if bridge.done():
                return
            if task.cancelled():
                bridge.set_exception(asyncio.CancelledError())
            elif (error := task.exception()) is not None:
                bridge.set_exception(error)
            else:
                bridge.set_result(task.result())

        task.add_done_callback(done)

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def location(self) -> Location | None:
        return self.inner.location

    @property
    def name(self) -> str | None:
        return self.inner.name

    @property
    def dest_path(self) -> os.PathLike[str] | str:
        return self.inner.dest_path

    @property
    def ended_coros(self) -> dict[int, Coro]:
        return self.inner.ended_coros  # dict reads and writes: atomic, from either thread

    @ended_coros.setter
    def ended_coros(self, value: dict[int, Coro]) -> None:
        self.inner.ended_coros = value

    def start_soon(self) -> asyncio.Future[None]:
        """(Core loop.) Start the network (once): done when it listens."""
        if self._started is None:
            self._started = asyncio.ensure_future(self.started(), loop=self.kernel.loop)
        return self._started

    async def started(self) -> None:
        await self.transport.run_from(self.inner.started())

    async def _stop_thread(self) -> None:
        self.transport.stop(timeout=0)  # the network stopped: its loop ends by itself

    # -- remote coroutines ----------------------------------------------------------------------

    def send(self, coro: Coro, message: object) -> int:
        if self.transport.on_thread():
            return self.inner.send(coro, message)
        location = coro.home_location
        kind = type(message)
        if kind in _PLAIN_TYPES:  # no fields, no buffers: the thread packs no control for it
            data = _plain(message)
            return self._send(
                location, len(data), self.inner.post_plain, location, coro.id, data, kind is bytes
            )
        fields: dict[str, object] = {"c": coro.id}
        payload, more = payloads.encode(message, fields)
        if kind in flow.CONTROL_TYPES:  # a pulse: ahead of user data, never held
            self._enqueue(
                self.inner.post, location, trusted_message("control_send", 0, fields, payload)
            )
            return 0
        size = len(payload) + sum(len(part) for part in more)
        outgoing = trusted_message("send", 0, fields, payload)
        return self._send(location, size, self.inner.post, location, outgoing, more)

    def _send(
        self, location: Location, size: int, func: Callable[..., object], *args: object
    ) -> int:
        """Queue ``func(*args)``, which sends ``size`` bytes of user data to ``location``,
        with back-pressure: a thread waits for room first, a core coroutine is held after."""
        sender = self.kernel.cur_coro() if self.kernel.on_loop_thread() else None
        if sender is None and self._over_high(location):
            self._wait_for_room(location)
        self._enqueue(func, *args, size=size)
        if sender is not None and self._over_high(location):
            room = self._room(location)
            if self._charge(location, room, sender, size):
                self.kernel.hold_sender(sender, lambda: asyncio.wrap_future(room))
        return 0

    def _charge(
        self,
        location: Location,
        room: concurrent.futures.Future[None],
        sender: Coro,
        size: int,
    ) -> bool:
        """(Core thread.) Charge ``size`` bytes sent over the link's high-water mark to
        ``sender`` (`flow.Charges`, forgotten once ``room``, the link's drain to
        ``flow.SEND_LOW``, is done); True: hold it."""
        charged = self._charges.get(location)
        if charged is None or charged[0] is not room:  # a new spell over the mark
            for other in [key for key, (done, _) in self._charges.items() if done.done()]:
                del self._charges[other]  # spells that ended: no coroutine kept for them
            charged = self._charges[location] = (room, flow.Charges())
        return charged[1].charge(sender, size)

    def send_held(self, coro: Coro, message: object) -> HeldSend:
        """Send ``message`` to ``coro`` unless the core takes it back first (`take_held`):
        it goes out when released (`release_held`) or `discoro.net.held.HOLD_MAX` seconds
        after it was held, whichever is first (`discoro.net.held`); no hand-over to the
        network's loop while that loop watches the held sends already."""
        held = HeldSend(coro, message)
        if not self.held.hold(held):
            self._enqueue(self.held.watch, self.transport.loop)
        return held

    def take_held(self, held: HeldSend) -> bool:
        """Take ``held`` back if it has not gone out (True: the caller sends its content)."""
        return self.held.take(held)

    def join_held(self, held: HeldSend, items: list[object], item: object) -> bool:
        """Append ``item`` to ``items`` of ``held``'s message if it has not gone out yet."""
        return self.held.join(held, items, item)

    def release_held(self, held: HeldSend) -> None:
        """Let ``held`` go out now (in order with what is sent after this call)."""
        if held.state == HELD:
            self._enqueue(self.held.release, held)

    def _over_high(self, location: Location) -> bool:
        peer = self.inner.peers.get(location)
        link = None if peer is None else peer.link
        queued = 0 if link is None else link.queued_bytes
        return queued + self._queued_bytes > flow.SEND_HIGH

    def _room(self, location: Location) -> concurrent.futures.Future[None]:
        """A thread-safe future done once the link to ``location`` (after what is queued
        now) has drained to ``flow.SEND_LOW``, or is gone (one per link while pending)."""
        room = self._rooms.get(location)
        if room is not None and not room.done():
            return room
        room = self._rooms[location] = concurrent.futures.Future()

        def watch() -> None:
            peer = self.inner.peers.get(location)
            link = None if peer is None else peer.link
            if link is None or link.queued_bytes <= flow.SEND_LOW:
                room.set_result(None)
                return
            bridged = bridge_future(link.hold())
            bridged.add_done_callback(lambda _: room.set_result(None))

        self._enqueue(watch)
        return room

    def _wait_for_room(self, location: Location) -> None:
        """(A thread that is not a loop's.) Wait while the link is over its high-water mark."""
        try:
            self._room(location).result(flow.THREAD_SEND_TIMEOUT)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(
                f"send to {location}: data still queued after {flow.THREAD_SEND_TIMEOUT} s "
                "(the receiver does not keep up)"
            ) from None

    async def deliver(self, coro: Coro, message: object, timeout: float | None) -> int:
        delivery = encode_delivery(coro, message)
        return await self.run(self.inner.deliver_encoded(coro, delivery, timeout))

    def terminate(self, coro: Coro) -> int:
        self.call_soon(self.inner.terminate, coro)
        return 0

    def throw(self, coro: Coro, error: BaseException) -> int:
        payload = handlers.dumps_exception(error)
        message = Message("throw", 0, {"c": coro.id}, payload)
        self.call_soon(self.inner.post, coro.home_location, message)
        return 0

    async def monitor(self, monitor: Coro, observed: Coro) -> int:
        return await self.run(self.inner.monitor(monitor, observed))

    def send_monitor_exception(
        self, monitor: Coro, observed: Coro, info: tuple[object, ...]
    ) -> None:
        fields, payload = handlers.encode_exit(observed, info)
        fields["m"] = monitor.id
        message = Message("notify_exit", 0, fields, payload)
        self.call_soon(self.inner.post, monitor.home_location, message)

    # -- remote channels ------------------------------------------------------------------------

    def channel_send(self, channel: Channel, message: object) -> int:
        payload = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        outgoing = trusted_message("channel_send", 0, {"n": channel.name}, payload)
        self.call_soon(self.inner.post, channel.home_location, outgoing)
        return 0

    async def channel_deliver(
        self, channel: Channel, message: object, timeout: float | None, n: int
    ) -> int:
        return await self.run(self.inner.channel_deliver(channel, message, timeout, n))

    async def channel_subscribe(
        self, channel: Channel, subscriber: Coro | Channel, timeout: float | None
    ) -> int:
        return await self.run(self.inner.channel_subscribe(channel, subscriber, timeout))

    async def channel_unsubscribe(
        self, channel: Channel, subscriber: Coro | Channel, timeout: float | None
    ) -> int:
        return await self.run(self.inner.channel_unsubscribe(channel, subscriber, timeout))

    # -- names, peers, files --------------------------------------------------------------------

    async def locate(self, kind: str, name: str, location: object, timeout: float | None) -> object:
        return await self.run(self.inner.locate(kind, name, location, timeout))

    async def peer(
        self, loc: object, udp_port: int = 0, stream_send: bool = False, broadcast: bool = False
    ) -> int:
        return await self.run(self.inner.peer(loc, udp_port, stream_send, broadcast))

    def add_status_subscriber(self, coro: Coro) -> None:
        self.call_soon(self.inner.add_status_subscriber, coro)

    def remove_status_subscriber(self, coro: Coro) -> None:
        self.call_soon(self.inner.remove_status_subscriber, coro)

    async def send_file(
        self,
        location: object,
        file: str | os.PathLike[str],
        dir: str | None = None,
        overwrite: bool = False,
        timeout: float | None = None,
    ) -> int | os.stat_result:
        return await self.run(self.inner.send_file(location, file, dir, overwrite, timeout))

    async def del_file(
        self,
        location: object,
        file: str | os.PathLike[str],
        dir: str | None = None,
        timeout: float | None = None,
    ) -> int:
        return await self.run(self.inner.del_file(location, file, dir, timeout))

    def set_dest_path(self, path: str | os.PathLike[str]) -> None:
        self.call_wait(self.inner.set_dest_path, path)

    def peer_locations(self) -> Sequence[object]:
        return self.call_wait(lambda: list(self.inner.peer_locations()))

    async def close_peer(self, location: object, timeout: float | None = None) -> int:
        return await self.run(self.inner.close_peer(location, timeout))

    async def discover_peers(self, port: int | None = None) -> int:
        return await self.run(self.inner.discover_peers(port))

    def ignore_peers(self, flag: bool) -> None:
        self.call_soon(self.inner.ignore_peers, flag)
