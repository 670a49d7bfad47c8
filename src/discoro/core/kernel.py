"""The per-process kernel, `AsynCoro`: one asyncio loop in a daemon thread runs every coroutine.

Invariants:
- Runtime state (the coroutine table, the name registry, mailboxes, monitors) is touched only
  on the loop thread. Entry points that other threads may call hop over with
  ``call_soon_threadsafe`` (see `call`), so a request from a thread is ordered after every
  earlier request from that thread.
- ``_live`` counts the running non-daemon coroutines. ``finish()``, ``join()`` and the atexit
  hook wait until it is zero: a program that creates coroutines and falls off its end runs
  until they are done.
- There is one kernel per process (`MetaSingleton`); ``terminate()`` ends it for good and frees
  the slot, so a later ``AsynCoro()`` starts a new one.
- Networking is not part of the core. A higher layer installs a factory with
  `install_network`; the kernel builds the network object the first time a distributed feature
  asks for it (`network()`), so a purely local program never opens a socket.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from discoro.core.distributed import DistributedMethods
from discoro.core.door import NetworkDoor
from discoro.core.driver import _current_coro, run
from discoro.core.eventloop import new_event_loop
from discoro.core.idle_spin import IdleSpin
from discoro.core.log import logger
from discoro.core.singleton import MetaSingleton
from discoro.core.wakeups import SameTurnWakeups
from discoro.errors import ShutdownError, WrongThreadError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from discoro.core.channel import Channel
    from discoro.core.coro import Coro
    from discoro.core.network_api import NetworkRuntime

    NetworkFactory = Callable[["AsynCoro", dict[str, Any]], NetworkRuntime]

T = TypeVar("T")
# an atexit entry: (priority, registration order, func, args, kwargs)
ExitFunc = tuple[float, int, "Callable[..., object]", tuple[object, ...], dict[str, object]]

#: Options of the distributed runtime (reference 2.2 plus ``cafile`` and ``peers``); the core
#: only stores them for the network layer.
NETWORK_OPTIONS = (
    "node",
    "udp_port",
    "tcp_port",
    "ext_ip_addr",
    "name",
    "secret",
    "certfile",
    "keyfile",
    "cafile",
    "dest_path",
    "max_file_size",
    "notifier",
    "peers",
    "discover",
    "discover_peers",  # later versions: False = no start-up announcement (still listens)
    "announce_port",
    "announce_interval",
)


class AsynCoro(DistributedMethods, NetworkDoor, metaclass=MetaSingleton):
    """The coroutine scheduler of this process (one per process)."""

    _singleton_instance: ClassVar[AsynCoro | None] = None
    _network_factory: ClassVar[NetworkFactory | None] = None

    def __init__(self, **options: Any) -> None:
        """Network options (any of them starts the network at once, else it starts when
        first needed): ``node`` (address to bind), ``udp_port`` (discovery, 51350),
        ``tcp_port`` (0: any), ``ext_ip_addr`` (address to advertise), ``name``, ``secret``,
        ``certfile``/``keyfile``/``cafile`` (TLS), ``dest_path`` (received files),
        ``max_file_size``, ``peers`` (addresses to dial), ``discover`` (broadcast or not),
        ``discover_peers`` (False: listen, but announce only when `discover_peers` is
        called), ``announce_port`` (where announcements go; default ``udp_port``),
        ``announce_interval`` (announce again every so many seconds), ``notifier``."""
        unknown = set(options) - set(NETWORK_OPTIONS)
        if unknown:
            raise TypeError(f"AsynCoro() got unknown option(s): {', '.join(sorted(unknown))}")
        self.options: dict[str, Any] = options
        self._loop = new_event_loop()
        self._wakeups = SameTurnWakeups(self._loop)  # see `NetworkDoor.begin_read`
        self.spin = IdleSpin(self._loop)  # polls a moment after network traffic
        self._coros: dict[int, Coro] = {}
        self._registry: dict[str, Coro] = {}
        self._channels: dict[str, Channel] = {}
        self._rcis: dict[str, object] = {}  # filled by discoro.net.rci
        self._live = 0
        self._idle_waiters: list[asyncio.Future[None]] = []
        # (priority, order, func, args, kwargs): higher priority first, then registration order
        self._exit_funcs: list[ExitFunc] = []
        self._shutdown_hooks: list[tuple[Callable[[], Awaitable[None]], float]] = []
        self._network: NetworkRuntime | None = None
        self._network_lock = threading.Lock()
        self._terminated = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run_loop, name="discoro-kernel", daemon=True)
        self._thread.start()
        self._ready.wait()
        self._thread_id = self._thread.ident
        _register_exit_wait(self._at_interpreter_exit)
        if options:
            self.network()

    # -- construction helpers -------------------------------------------------------------

    @classmethod
    def instance(cls, *args: Any, **kwargs: Any) -> AsynCoro:
        """The process's kernel, created with ``kwargs`` if there is none yet."""
        existing = cls._existing_instance()
        return existing if existing is not None else cls(*args, **kwargs)

    @staticmethod
    def cur_coro() -> Coro | None:
        """The coroutine that is executing now (None outside any coroutine)."""
        current: Coro | None = _current_coro.get()
        return current

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    # -- thread hops ----------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._thread_id

    def call(self, func: Callable[..., Any], *args: Any) -> None:
        """Run ``func(*args)`` on the loop thread: now if already there, else soon."""
        if threading.get_ident() == self._thread_id:
            func(*args)
        elif self._terminated:
            raise ShutdownError("the discoro runtime has been terminated")
        else:
            self._loop.call_soon_threadsafe(func, *args)

    def run_sync(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """Run an awaitable on the loop and block this (non-loop) thread for its result."""
        if self.on_loop_thread():
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
            raise WrongThreadError(
                "a blocking call was made on the discoro loop thread; "
                "use it from the main thread, or yield/await it inside a coroutine"
            )
        if self._terminated:
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
            raise ShutdownError("the discoro runtime has been terminated")

        async def runner() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(runner(), self._loop).result(timeout)

    # -- coroutine bookkeeping (loop thread only) -----------------------------------------

    def _spawn(self, coro: Coro) -> None:
        if self._terminated:
            coro._close_unstarted()
            return
        if not coro._daemon:
            self._live += 1
        coro._task = self._loop.create_task(run(coro))

    def _retire(self, coro: Coro) -> None:
        self._coros.pop(coro._id, None)
        if not coro._daemon:
            self._count_live(-1)

    def _count_live(self, delta: int) -> None:
        self._live += delta
        if self._live == 0 and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _wait_idle(self) -> None:
        if self._live > 0:
            waiter = self._loop.create_future()
            self._idle_waiters.append(waiter)
            await waiter

    def running_coros(self) -> list[Coro]:
        """The coroutines that have not ended yet (a snapshot)."""
        return list(self._coros.values())

    def _runnable(self, besides: Coro | None = None) -> list[Coro]:
        """Test hook (loop thread): the coroutines but ``besides`` that are running or ready to
        run. Every other one is blocked: suspended on a future that is still pending (a
        receive, a lock, a sleep, a thread's result, I/O...). A coroutine whose future is done
        but that has not resumed yet counts as ready. Tests use it to wait until everything
        that can happen has happened (see ``tests/testing.py``), never for timing."""
        runnable = []
        for coro in self._coros.values():
            waiting = coro._suspended_on
            if coro is not besides and (waiting is None or waiting.done()):
                runnable.append(coro)
        return runnable

    # -- names ----------------------------------------------------------------------------

    def _register(self, name: str, coro: Coro) -> int:
        holder = self._registry.get(name)
        if holder is not None and holder is not coro and not holder._done:
            return -1
        self._registry[name] = coro
        return 0

    def _unregister(self, name: str, coro: Coro) -> int:
        if self._registry.get(name) is not coro:
            return -1
        del self._registry[name]
        return 0

    def registered(self, name: str) -> Coro | None:
        coro = self._registry.get(name)
        return None if coro is None or coro._done else coro

    # -- networking hook ------------------------------------------------------------------

    @classmethod
    def install_network(cls, factory: NetworkFactory) -> None:
        """Called once by the network layer: how to build this process's network runtime."""
        cls._network_factory = factory

    @property
    def network_started(self) -> bool:
        return self._network is not None

    def network(self) -> NetworkRuntime:
        """The network runtime; the first call builds and starts it (blocking until it
        listens when called from a thread; in the background on the loop thread)."""
        network = self._network
        if network is not None:
            return network
        with self._network_lock:
            if self._network is None:
                factory = type(self)._network_factory
                if factory is None:
                    raise RuntimeError(
                        "distributed features need the network layer: import discoro"
                    )
                network = factory(self, self.options)
                if self.on_loop_thread():
                    network.start_soon()
                else:
                    self.run_sync(network.started())
                self._network = network
        return self._network

    def add_shutdown_hook(self, hook: Callable[[], Awaitable[None]], timeout: float = 5) -> None:
        """An async callable run on the loop when the kernel shuts down (before it stops),
        given at most ``timeout`` seconds."""
        self._shutdown_hooks.append((hook, timeout))

    @property
    def location(self) -> Any:
        return None if self._network is None else self._network.location

    @property
    def name(self) -> str | None:
        return None if self._network is None else self._network.name

    # -- ending ---------------------------------------------------------------------------

    def atexit(self, *args: object, **kwargs: object) -> None:
        """Run a function after the kernel has stopped: ``atexit(func, *args, **kwargs)``
        (the seed's form) or ``atexit(priority, func, *args, **kwargs)`` (the later form:
        higher priorities run first; the seed's form has priority 0). Functions of one
        priority run in the order they were registered."""
        priority: float = 0
        if args and isinstance(args[0], int | float) and not isinstance(args[0], bool):
            priority, args = args[0], args[1:]
        if not args or not callable(args[0]):
            raise TypeError("atexit() needs a function: atexit([priority,] func, *args, **kwargs)")
        func, args = args[0], args[1:]
        self._exit_funcs.append((priority, len(self._exit_funcs), func, args, kwargs))

    def join(self, show_running: bool = False, timeout: float | None = None) -> None:
        """Wait until every non-daemon coroutine has ended (the kernel keeps running)."""
        if show_running:
            for coro in self.running_coros():
                logger.info("running: %s", coro)
        self.run_sync(self._wait_idle(), timeout)

    def finish(self) -> None:
        """Wait until every non-daemon coroutine has ended, then stop the kernel."""
        if self._terminated:
            return
        self.join()
        self.terminate()

    def terminate(self) -> None:
        """Stop now: close every remaining coroutine, stop the loop, run the atexit functions."""
        if self._terminated:
            return
        if self.on_loop_thread():
            raise WrongThreadError("terminate() must be called from outside the coroutines")
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        except Exception as exc:  # the loop is going away regardless
            logger.warning("kernel shutdown was not clean: %r", exc)
        self._terminated = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        type(self)._forget_instance()
        atexit.unregister(self._at_interpreter_exit)  # where it was registered there
        for _priority, _order, func, args, kwargs in sorted(
            self._exit_funcs, key=lambda entry: (-entry[0], entry[1])
        ):
            try:
                func(*args, **kwargs)
            except Exception:
                logger.exception("atexit function %r failed", func)

    async def _shutdown(self) -> None:
        for hook, timeout in reversed(self._shutdown_hooks):
            try:
                await asyncio.wait_for(hook(), timeout)
            except Exception as exc:
                logger.warning("shutdown hook %r failed: %r", hook, exc)
        coros = list(self._coros.values())
        for coro in coros:
            coro.terminate()
        tasks = [coro._task for coro in coros if coro._task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        self._terminated = True

    def _at_interpreter_exit(self) -> None:
        try:
            self.finish()
        except KeyboardInterrupt:
            self.terminate()


def _register_exit_wait(hook: Callable[[], None]) -> None:
    """Run ``hook`` (wait for the non-daemon coroutines) when the main thread ends.

    Through threading's own exit hooks where this Python has them: they run before thread
    pools shut down, so coroutines that outlive the main script can still resolve names, run
    ``to_thread`` or start servers (after ``atexit`` time every new executor job is refused).
    Importing the pool module first registers its hook before ours; hooks run in reverse, so
    ours runs first. Elsewhere (or once threading is shutting down): ``atexit``.
    """
    import concurrent.futures.thread  # noqa: F401  (its exit hook goes in before ours)

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(hook)
            return
        except RuntimeError:  # threading is already shutting down
            pass
    atexit.register(hook)
