"""The transport thread: a process's network on an event loop of its own (issue 10, D10).

Purpose: a job that blocks its process's event loop (``time.sleep(30)``, a CPU loop that never
yields) must not keep the process from taking in messages and files. In a process that asks
for it (a server, `discoro.cluster.server_main`; or any process with ``DISCORO_NET_THREAD=1``)
the whole `Network` (sockets, links, records, handlers, file receiving) runs on a loop of its
own in a daemon thread, the transport thread; coroutines, jobs and the cluster logic stay on
the kernel's loop (the core loop). Clients and schedulers keep one loop (no hop to pay).

Theory of operation:
- net -> core: the network holds a `CoreHop` where it would hold the kernel (it has every
  kernel method the net layer calls; ``tests/test_net_thread.py`` checks that). Its pure
  lookups (``local_coro``, ``has_ended``, ``local_channel``, ``registered``, ``rcis``) read
  the kernel's tables from the transport thread (dict reads, atomic under the GIL). Its
  state-changing calls (``deliver_local``, ``deliver_local_run``: a link's run of sends to
  one coroutine as one entry, ``add_monitor_local``, ``hold_sender``,
  ``drop_subscribers_at``, ``run_local``) are appended to a batch, which goes to the core
  loop with one ``call_soon_threadsafe`` at the end of the link's read (``end_read``; outside
  a read, in the transport loop's next turn). The core runs a batch's calls in the order they
  were made, so per-peer FIFO order holds into the mailboxes, and the coroutines they wake in
  the same turn (inside its own ``begin_read``/``end_read``). A batch flushed while the core
  has not yet taken the previous one joins it (under ``_handoff``, a lock held for a list
  swap or extend): the core is woken once per batch it takes, not once per read. Invariant:
  ``_pending`` is not None exactly while one ``_take_pending`` call is scheduled on the core
  loop and has not yet run; that call takes everything pending, in flush order.
  ``complete`` (a request's reply) is the network's own future: completed here, at once. A
  message is in the process (a ``deliver`` is acknowledged) once it is in a batch; its
  coroutine gets it when the core loop runs.
- Intake bound: with one loop, a process whose loop is blocked reads nothing, so its senders'
  links fill and they are held (`net.flow`). Here the transport thread keeps reading, so the
  hop weighs the user messages it takes in for the core (``took``: their payload bytes) and
  what the core has run; while more than `INTAKE_HIGH` bytes wait for the core, every link
  that brings more stops reading (`Link.pause_intake`) until the core is down to
  `INTAKE_LOW`. Two counters, each written by one thread only (``taken`` by the transport,
  ``handed`` by the core), so no lock; the core wakes the transport only to resume.
- The hop's loop-host methods (``loop``, ``call``, ``on_loop_thread``, ``run_sync``) are the
  transport loop's: for the network code, "the loop" is its own.
- core -> net goes through `discoro.net.threaded.ThreadedNetwork`.
- The thread is named ``discoro-net`` in the OS (Linux), so ``top -H`` shows what it costs.
- The thread is a daemon: nothing waits for it at exit. The kernel's shutdown stops the
  network on it (a shutdown hook run through the hop), then its loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import ctypes
import sys
import threading
from time import monotonic
from typing import TYPE_CHECKING, TypeVar

from discoro.core.eventloop import new_event_loop
from discoro.core.idle_spin import IdleSpin
from discoro.core.log import logger
from discoro.errors import ShutdownError, WrongThreadError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from discoro.core.channel import Channel
    from discoro.core.coro import Coro
    from discoro.core.kernel import AsynCoro
    from discoro.net.link import Link
    from discoro.wire.messages import Message

T = TypeVar("T")
_get_ident = threading.get_ident
Call = tuple["Callable[..., object]", tuple[object, ...]]
#: Bytes of user messages taken in and not yet run by the core above which links stop
#: reading, and at or below which they read again (module knobs, read at each check).
INTAKE_HIGH, INTAKE_LOW = 64 * 1024 * 1024, 16 * 1024 * 1024
#: The ops whose payloads go to the core's coroutines and channels (weighed by the hop).
INTAKE_OPS = frozenset({"send", "deliver", "channel_send"})
INTAKE_OVERHEAD = 64  # bytes counted per message besides its payload
#: Seconds between two log lines about paused intake: a core that keeps up only just pauses
#: and resumes links hundreds of times a second, and each line would say the same.
INTAKE_LOG_EVERY = 10.0


#: The transport thread's name in the OS (``top -H``, ``ps -L``, /proc/PID/task/TID/comm).
OS_THREAD_NAME = "discoro-net"
PR_SET_NAME = 15  # prctl(2)


def name_os_thread(name: str) -> None:
    """Name the calling thread in the OS too (Linux; at most 15 bytes): so an operator, and a
    test, see from outside whether a process runs a transport thread. Best effort."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):  # no libc to call: no OS name
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


class TransportThread:
    """An event loop running in a daemon thread of its own."""

    def __init__(self, name: str = "discoro-transport") -> None:
        self.loop = new_event_loop()
        self.spin = IdleSpin(self.loop)  # polls a moment after network traffic
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), name=name, daemon=True)
        self.thread.start()
        ready.wait()
        self.ident = self.thread.ident

    def _run(self, ready: threading.Event) -> None:
        name_os_thread(OS_THREAD_NAME)
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def on_thread(self) -> bool:
        return threading.get_ident() == self.ident

    def call(self, func: Callable[..., object], *args: object) -> None:
        """Run ``func(*args)`` on the transport loop: now if already there, else soon."""
        if self.on_thread():
            func(*args)
            return
        try:  # in a context of its own, not the caller's (a coroutine's, on the core loop)
            self.loop.call_soon_threadsafe(func, *args, context=contextvars.Context())
        except RuntimeError:  # the loop is closed: the process is ending
            raise ShutdownError("the discoro network thread has stopped") from None

    def submit(self, awaitable: Awaitable[T]) -> concurrent.futures.Future[T]:
        """Start ``awaitable`` on the transport loop (from any other thread)."""

        async def runner() -> T:
            return await awaitable

        try:
            return asyncio.run_coroutine_threadsafe(runner(), self.loop)
        except RuntimeError:
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
            raise ShutdownError("the discoro network thread has stopped") from None

    def run_sync(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``awaitable`` on the transport loop and block this thread for its result."""
        if self.on_thread():
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
            raise WrongThreadError("a blocking network call was made on the network's thread")
        return self.submit(awaitable).result(timeout)

    async def run_from(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` on the transport loop from a coroutine of another loop (the
        result comes back to the caller's loop; cancelling the caller cancels it there)."""
        if self.on_thread():
            return await awaitable
        return await asyncio.wrap_future(self.submit(awaitable))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop (from another thread) and wait for the thread to end."""
        if not self.thread.is_alive():
            return
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            return
        if not self.on_thread():
            self.thread.join(timeout)


def _take_pending(hop: CoreHop) -> None:
    """(Core loop.) Take every call the transport flushed since the last wake-up and run
    them (see ``CoreHop._flush``)."""
    with hop._handoff:
        batch, hop._pending = hop._pending, None
        weight, hop._pending_weight = hop._pending_weight, 0
    if batch is not None:
        _run_batch(batch, weight, hop)


def _run_batch(batch: list[Call], weight: int, hop: CoreHop) -> None:
    """(Core loop.) Run the calls of one batch in order; one that fails is logged alone.
    As for a read on one loop, the coroutines they wake run at the batch's end, in this
    loop turn (`NetworkDoor.begin_read`)."""
    kernel = hop.kernel
    kernel.begin_read()
    try:
        for func, args in batch:
            try:
                func(*args)
            except Exception:
                logger.exception("network call %r into the core failed", func)
    finally:
        kernel.end_read()
    if weight:
        hop.handed += weight
        if hop.paused and hop.taken - hop.handed <= INTAKE_LOW:
            hop.transport.call(hop.resume_intake)


class CoreHop:
    """The network's stand-in for the kernel when it runs on a transport thread (see the
    module docstring): lookups here, state changes batched over to the core loop."""

    def __init__(self, kernel: AsynCoro, transport: TransportThread) -> None:
        self.kernel = kernel
        self.transport = transport
        self.loop = transport.loop
        self.spin = transport.spin  # the transport loop's (`core.idle_spin`)
        self._batch: list[Call] = []
        self._handoff = threading.Lock()  # guards the two below (transport and core)
        self._pending: list[Call] | None = None  # flushed, not yet taken by the core
        self._pending_weight = 0  # ... and the bytes of user messages in it
        self.batches = 0  # wake-ups of the core loop, each taking all pending (tests read it)
        self.joined = 0  # flushes that joined a batch the core had not taken yet
        self.calls = 0  # calls handed to the core
        self.taken = 0  # bytes of user messages taken in for the core (transport writes)
        self.handed = 0  # ... and run by it (core writes)
        self._weight = 0  # ... of the batch being made
        self.paused: list[Link] = []  # links that stopped reading (intake bound)
        self.pauses = 0  # times the intake bound was reached (a line logs them, rate-limited)
        self._pauses_logged = 0
        self._pause_logged_at = -INTAKE_LOG_EVERY
        self._reading = 0  # inside a link's read (`begin_read`): its end flushes the batch
        self._ident = transport.ident
        self._deliver = kernel.deliver_local
        self._deliver_run = kernel.deliver_local_run
        self.local_coro = kernel.local_coro  # type: ignore[method-assign]  # a pure look-up

    # -- the network's own loop ---------------------------------------------------------------

    def on_loop_thread(self) -> bool:
        return self.transport.on_thread()

    def call(self, func: Callable[..., object], *args: object) -> None:
        self.transport.call(func, *args)

    def run_sync(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        return self.transport.run_sync(awaitable, timeout)

    def begin_read(self) -> None:
        """A link hands up a received chunk: the batch goes to the core at its end."""
        self._reading += 1

    def end_read(self) -> None:
        self._reading -= 1
        if not self._reading:
            self._flush()
            self.spin.touch()

    @staticmethod
    def complete(future: asyncio.Future[object], value: object) -> None:
        """Complete ``future``, one of the network's own (a request's reply)."""
        future.set_result(value)

    def add_shutdown_hook(self, hook: Callable[[], Awaitable[None]], timeout: float = 5) -> None:
        """``hook`` runs on the transport loop when the kernel shuts down."""
        self.kernel.add_shutdown_hook(lambda: self.transport.run_from(hook()), timeout)

    # -- lookups (any thread) -------------------------------------------------------------------

    @staticmethod
    def cur_coro() -> Coro | None:
        return None  # no coroutine runs on the transport thread

    def local_coro(self, coro_id: int) -> Coro | None:
        return self.kernel.local_coro(coro_id)

    def has_ended(self, coro: Coro) -> bool:
        return self.kernel.has_ended(coro)

    def coro_handle(self, name: str, coro_id: int, location: object) -> Coro:
        return self.kernel.coro_handle(name, coro_id, location)

    def local_channel(self, name: str, registered: bool = False) -> Channel | None:
        return self.kernel.local_channel(name, registered)

    def registered(self, name: str) -> Coro | None:
        return self.kernel.registered(name)

    @property
    def rcis(self) -> dict[str, object]:
        return self.kernel.rcis

    @property
    def location(self) -> object:
        return self.kernel.location

    # -- state changes (batched to the core loop) ---------------------------------------------

    def _post(self, func: Callable[..., object], *args: object) -> None:
        if not self.transport.on_thread():  # keep one batch per thread: only the loop's
            self.transport.call(self._post, func, *args)
            return
        batch = self._batch
        batch.append((func, args))
        if len(batch) == 1 and not self._reading:  # outside a read: flushed next turn
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        weight, self._weight = self._weight, 0
        if not batch and not weight:
            return
        self.calls += len(batch)
        with self._handoff:
            pending = self._pending
            if pending is not None:  # the core is yet to take the last batch: ride along
                pending.extend(batch)
                self._pending_weight += weight
                self.joined += 1
                return
            self._pending, self._pending_weight = batch, weight
        self.batches += 1
        try:
            self.kernel.loop.call_soon_threadsafe(_take_pending, self)
        except RuntimeError:  # the core loop is closed: the process is ending
            with self._handoff:
                self._pending, self._pending_weight = None, 0
            logger.debug("%d network call(s) into the core dropped: it has stopped", len(batch))

    # -- intake bound (transport thread) ------------------------------------------------------

    def took(self, link: Link, message: Message) -> None:
        """``link`` brought ``message``: weigh it if it goes to the core; stop the link
        reading while too much waits there."""
        if message.op in INTAKE_OPS:
            self._weigh(link, len(message.payload or b"") + INTAKE_OVERHEAD)

    def took_run(self, link: Link, op: str, payloads: list[bytes]) -> None:
        """`took` for a run of messages of ``op`` (`net.send_runs`): each weighed."""
        if op in INTAKE_OPS:
            self._weigh(link, sum(map(len, payloads)) + INTAKE_OVERHEAD * len(payloads))

    def _weigh(self, link: Link, size: int) -> None:
        self.taken += size
        if not self._weight and not self._batch and not self._reading:
            self.loop.call_soon(self._flush)  # the weight goes over with a batch, even empty
        self._weight += size
        if self.taken - self.handed > INTAKE_HIGH and not link.intake_paused:
            if not self.paused:
                self._intake_bound_reached()
            link.pause_intake()
            self.paused.append(link)

    def _intake_bound_reached(self) -> None:
        self.pauses += 1
        now = monotonic()
        if now - self._pause_logged_at < INTAKE_LOG_EVERY:
            return
        since = self.pauses - self._pauses_logged
        self._pause_logged_at, self._pauses_logged = now, self.pauses
        logger.info(
            "%d bytes of messages wait for this process's coroutines (its loop is busy): "
            "links stop reading until they are taken%s",
            self.taken - self.handed,
            f" ({since} times since the last such line)" if since > 1 else "",
        )

    def resume_intake(self) -> None:
        if self.taken - self.handed > INTAKE_LOW:
            return
        paused, self.paused = self.paused, []
        for link in paused:
            link.resume_intake()

    def deliver_local(self, coro: Coro, message: object) -> None:
        """(The hot path of every message a link takes in: `_post` inlined.)"""
        if _get_ident() != self._ident:
            self.transport.call(self._post, self._deliver, coro, message)
            return
        batch = self._batch
        batch.append((self._deliver, (coro, message)))
        if len(batch) == 1 and not self._reading:  # outside a read: flushed next turn
            self.loop.call_soon(self._flush)

    def deliver_local_run(self, coro: Coro, messages: list[object]) -> None:
        """`deliver_local` of a run of messages (`Handlers.on_send_run`): one batch entry."""
        if _get_ident() != self._ident:
            self.transport.call(self._post, self._deliver_run, coro, messages)
            return
        batch = self._batch
        batch.append((self._deliver_run, (coro, messages)))
        if len(batch) == 1 and not self._reading:  # outside a read: flushed next turn
            self.loop.call_soon(self._flush)

    def add_monitor_local(self, observed: Coro, monitor: Coro) -> None:
        self._post(self.kernel.add_monitor_local, observed, monitor)

    def drop_subscribers_at(self, location: object) -> None:
        self._post(self.kernel.drop_subscribers_at, location)

    def run_local(self, func: Callable[..., object], *args: object) -> None:
        self._post(func, *args)

    def hold_sender(self, coro: Coro, make_hold: Callable[[], asyncio.Future[None]]) -> None:
        """Hold ``coro`` (a core coroutine) until ``make_hold()`` (a transport future) is
        done: the core gets a future of its own loop that follows it."""
        bridge = bridge_future(make_hold())
        core_loop = self.kernel.loop
        self._post(
            self.kernel.hold_sender, coro, lambda: asyncio.wrap_future(bridge, loop=core_loop)
        )


def bridge_future(future: asyncio.Future[None]) -> concurrent.futures.Future[None]:
    """A thread-safe future done when ``future`` (of the calling thread's loop) is done."""
    bridge: concurrent.futures.Future[None] = concurrent.futures.Future()

    def done(_: object) -> None:
        if not bridge.done():
            bridge.set_result(None)

    future.add_done_callback(done)
    return bridge
