"""`Computation`: what a client ships to the servers and how it runs coroutines there
(reference 3.3, 3.4).

Every method is an ``async def``: a generator coroutine ``yield``s it, an ``async def``
coroutine ``await``s it. Replies from the scheduler and the servers arrive at one router
coroutine per computation, which resolves the waiting call by request id; every wait is
bounded by ``timeout``, and a scheduler that stops pulsing (or goes offline) ends the
computation, so nothing waits forever.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
import uuid
from typing import TYPE_CHECKING, Any

from discoro.cluster import protocol as p
from discoro.cluster.constants import (
    MISSED_PULSES,
    SCHEDULER_NAME,
    MaxPulseInterval,
    MinPulseInterval,
    MsgTimeout,
)
from discoro.cluster.output import show_remote_output
from discoro.cluster.shipping import package, pickle_arguments, pickle_function
from discoro.cluster.status import CoroInfo, Status, StatusMessage
from discoro.core.coro import Coro
from discoro.core.kernel import AsynCoro
from discoro.core.log import logger
from discoro.net.location import Location, PeerStatus

if TYPE_CHECKING:
    from collections.abc import Callable


class RunFailed(Exception):
    """Why a run did not create a remote coroutine (the class in a failure tuple)."""


def _failure(kind: type[BaseException], func: Any, reason: str) -> tuple[Any, str, str]:
    name = getattr(func, "__name__", str(func))
    return (kind, name, reason)


class Computation:
    """What a client runs on the cluster: ``components`` (functions, classes, modules and file
    paths shipped to every server process), an optional ``status_coro`` that receives
    `StatusMessage` objects and a `MonitorException` for every remote coroutine, and the bounds
    ``timeout`` (each wait, 1 to 100 s) and ``pulse_interval`` (liveness, 1 to 100 s).

    Every method that waits is a coroutine call: ``yield`` it in a generator coroutine,
    ``await`` it in an ``async def`` one. ``schedule()`` first; then the ``run*`` methods; then
    ``close()``.
    """

    def __init__(
        self,
        components: Any,
        status_coro: Coro | None = None,
        timeout: float = MsgTimeout,
        pulse_interval: float = MinPulseInterval,
        zombie_period: float | None = None,
        remote_output: bool = True,
    ) -> None:
        """``remote_output``: what the remote coroutines print and log is shown here on
        stdout/stderr, prefixed with the process it came from (and passed to
        ``output_handler`` when set)."""
        if not MinPulseInterval <= pulse_interval <= MaxPulseInterval:
            raise ValueError(
                f"pulse_interval must be between {MinPulseInterval} and {MaxPulseInterval}"
            )
        if not 1 <= timeout <= MaxPulseInterval:
            raise ValueError(f"timeout must be between 1 and {MaxPulseInterval} seconds")
        if status_coro is not None and not isinstance(status_coro, Coro):
            raise TypeError(f"status_coro must be a Coro, not {status_coro!r}")
        if zombie_period is not None and zombie_period < MaxPulseInterval:
            raise ValueError(f"zombie_period must be at least {MaxPulseInterval} seconds")
        self._code, self._names, self._files = package(components)
        self._components: dict[str, Any] = dict.fromkeys(self._names)
        for component in components if isinstance(components, list) else [components]:
            if inspect.isfunction(component):
                self._components[component.__name__] = component
        self.status_coro = status_coro
        self.timeout = timeout
        self.pulse_interval = pulse_interval
        self.zombie_period = zombie_period
        self.remote_output = remote_output
        # called with (location, stream, text) for each remote `Output` (stream: "stdout",
        # "stderr" or "log"; text: whole lines), on the kernel's loop thread
        self.output_handler: Callable[[Any, str, str], Any] | None = None
        self.scheduler: Coro | None = None
        self._uid = uuid.uuid4().hex
        self._rids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._fanouts: dict[int, list[Any]] = {}
        self._router: Coro | None = None
        self._scheduled: asyncio.Future[str] | None = None
        self._state = "new"
        self._last_pulse = 0.0

    # -- scheduling ---------------------------------------------------------------------------

    async def schedule(self, location: Location | None = None, timeout: float | None = None) -> int:
        """Submit to the scheduler and wait for this computation's turn; 0 or -1."""
        if self._state != "new":
            logger.warning("computation already scheduled")
            return -1
        scheduler = await Coro.locate(SCHEDULER_NAME, location, timeout=self.timeout)
        if not isinstance(scheduler, Coro):
            logger.warning("no discoro scheduler found%s", f" at {location}" if location else "")
            return -1
        self.scheduler = scheduler
        kernel = AsynCoro.instance()
        loop = kernel.loop
        self._scheduled = loop.create_future()
        self._router = Coro(self._route)
        spec = p.ComputationSpec(
            self._uid,
            self._code,
            self._names,
            self._files,
            self.status_coro,
            self._router,
            self.pulse_interval,
            self.timeout,
            self.zombie_period,
            self.remote_output,
        )
        self._state = "queued"
        if await scheduler.deliver(p.Submit(spec), timeout=self.timeout) != 1:
            logger.warning("the scheduler at %s did not take the computation", scheduler.location)
            self._end()
            return -1
        kernel.add_shutdown_hook(self._close_at_exit)
        waited = self._scheduled
        if timeout is not None:
            done, _ = await asyncio.wait([waited], timeout=timeout)
            if not done:
                await self.close()
                return -1
        error = await waited
        if error:
            logger.warning("computation not scheduled: %s", error)
            self._end()
            return -1
        self._state = "current"
        self._last_pulse = time.monotonic()
        return 0

    # -- running ----------------------------------------------------------------------------

    async def run_at(self, where: Any, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``func(*args, **kwargs)`` at a node (address string: its least loaded
        process) or a process (`Location`). A remote `Coro`, or a failure tuple
        ``(exception class, function name, reason)``."""
        if isinstance(where, Location):
            return await self._run_one(("proc", where), func, args, kwargs)
        return await self._run_one(("node", _address(where)), func, args, kwargs)

    async def run(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run at the least loaded process of the least loaded node."""
        return await self._run_one(("any",), func, args, kwargs)

    async def run_each(self, where: Any, func: Any, *args: Any, **kwargs: Any) -> list[Any]:
        """One coroutine at every node (``where`` a string) or every process (a
        `Location`, or ``'proc'``/``'server'``); ``'node'`` is every node."""
        if isinstance(where, Location) or where in ("proc", "server"):
            return await self._run_many(("each_proc",), func, args, kwargs)
        if isinstance(where, str):
            return await self._run_many(("each_node",), func, args, kwargs)
        raise TypeError(f"run_each() needs a string or a Location, not {where!r}")

    async def run_nodes(self, func: Any, *args: Any, **kwargs: Any) -> list[Any]:
        """One coroutine at every node (its least loaded process); a list as `run_at`'s."""
        return await self._run_many(("each_node",), func, args, kwargs)

    async def run_procs(self, func: Any, *args: Any, **kwargs: Any) -> list[Any]:
        """One coroutine at every process (alias ``run_servers``); a list as `run_at`'s."""
        return await self._run_many(("each_proc",), func, args, kwargs)

    run_servers = run_procs

    async def run_node_procs(self, addr: str, func: Any, *args: Any, **kwargs: Any) -> list[Any]:
        """One coroutine at every process of the node at ``addr`` (alias
        ``run_node_servers``); a list as `run_at`'s."""
        return await self._run_many(("node_procs", _address(addr)), func, args, kwargs)

    run_node_servers = run_node_procs

    async def nodes(self) -> list[str]:
        """Addresses of the nodes initialized for this computation ([] if not current)."""
        return await self._list("nodes")

    async def procs(self) -> list[Location]:
        """Locations of the processes initialized for this computation."""
        return await self._list("procs")

    servers = procs

    async def close(self) -> int:
        """Close the computation, so the scheduler can run the next one."""
        if self._state in ("new", "closed") or self.scheduler is None:
            return 0
        rid = next(self._rids)
        future = self._expect(rid)
        self.scheduler.send(p.CloseRequest(self._uid, rid, self._router))
        await self._wait(future, rid)
        self._end()
        return 0

    # -- internals ------------------------------------------------------------------------------

    def _expect(self, rid: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = AsynCoro.instance().loop.create_future()
        self._waiting[rid] = future
        return future

    async def _wait(self, future: asyncio.Future[Any], rid: int) -> Any:
        try:
            done, _ = await asyncio.wait([future], timeout=self.timeout)
            if not done:
                return None
            return future.result()
        finally:
            self._waiting.pop(rid, None)
            self._fanouts.pop(rid, None)

    def _request_parts(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        name = getattr(func, "__name__", str(func))
        if isinstance(func, str):
            if func not in self._components:
                raise ValueError(f"{func!r} is not one of the computation's components")
            return func, name
        if not (inspect.isgeneratorfunction(func) or inspect.iscoroutinefunction(func)):
            raise TypeError(f"{name} must be a generator function or an async function")
        if self._components.get(name) is func:
            return name, name
        return pickle_function(func), name

    async def _run_one(self, where: tuple[Any, ...], func: Any, args: Any, kwargs: Any) -> Any:
        if self._state != "current" or self.scheduler is None:
            return _failure(RunFailed, func, "the computation is not scheduled")
        try:
            func_ref, name = self._request_parts(func, args, kwargs)
            payload = pickle_arguments(args, kwargs, [])
        except Exception as exc:
            return _failure(type(exc), func, str(exc))
        rid = next(self._rids)
        future = self._expect(rid)
        self.scheduler.send(
            p.RunRequest(self._uid, rid, where, func_ref, name, payload, self._router)
        )
        result = await self._wait(future, rid)
        if result is None:
            return _failure(RunFailed, func, f"no reply within {self.timeout} s")
        if isinstance(result, Coro):
            self._created(result, args, kwargs)
        return result

    async def _run_many(
        self, where: tuple[Any, ...], func: Any, args: Any, kwargs: Any
    ) -> list[Any]:
        if self._state != "current" or self.scheduler is None:
            return []
        try:
            func_ref, name = self._request_parts(func, args, kwargs)
            payload = pickle_arguments(args, kwargs, [])
        except Exception as exc:
            logger.warning("cannot run %s: %s", getattr(func, "__name__", func), exc)
            return []
        rid = next(self._rids)
        future = self._expect(rid)
        self._fanouts[rid] = []
        self.scheduler.send(
            p.RunRequest(self._uid, rid, where, func_ref, name, payload, self._router)
        )
        collected = self._fanouts[rid]
        result = await self._wait(future, rid)
        coros = result if isinstance(result, list) else collected
        coros = [coro for coro in coros if isinstance(coro, Coro)]
        for coro in coros:
            self._created(coro, args, kwargs)
        return coros

    def _created(self, coro: Coro, args: Any, kwargs: Any) -> None:
        if self.status_coro is not None:
            info = CoroInfo(coro, tuple(args), dict(kwargs), time.time())
            self.status_coro.send(StatusMessage(Status.CoroCreated, info))

    async def _list(self, what: str) -> list[Any]:
        if self._state != "current" or self.scheduler is None:
            return []
        rid = next(self._rids)
        future = self._expect(rid)
        self.scheduler.send(p.ListRequest(self._uid, rid, what, self._router))
        value = await self._wait(future, rid)
        return value if isinstance(value, list) else []

    def _end(self) -> None:
        self._state = "closed"
        if self._scheduled is not None and not self._scheduled.done():
            self._scheduled.set_result("closed")
        for future in self._waiting.values():
            if not future.done():
                future.set_result(None)
        if self._router is not None:
            self._router.terminate()
            self._router = None

    async def _close_at_exit(self) -> None:
        if self._state in ("queued", "current"):
            await self.close()

    async def _route(self, coro: Any = None) -> None:
        """Receive every reply and pulse for this computation."""
        coro.set_daemon()
        scheduler = self.scheduler
        remote = scheduler is not None and scheduler._remote
        if remote:
            AsynCoro.instance().peer_status(coro)
        check = 2 * self.pulse_interval
        while True:
            message = await coro.receive(timeout=check)
            kind = type(message)
            if kind is p.RunResult:
                self._take_run_result(message)
            elif kind is p.Output:
                self._show_output(message)
            elif kind is p.Reply:
                future = self._waiting.get(message.rid)
                if future is not None and not future.done():
                    if message.error:
                        logger.debug("scheduler: %s", message.error)
                    future.set_result(message.value)
            elif kind is p.Pulse:
                self._last_pulse = time.monotonic()
            elif kind is p.Scheduled:
                if self._scheduled is not None and not self._scheduled.done():
                    self._scheduled.set_result(message.error)
            elif kind is PeerStatus and (
                scheduler is not None
                and message.status == PeerStatus.Offline
                and message.location == scheduler.location
            ):
                logger.warning("scheduler at %s went offline; computation closed", message.location)
                self._end()
                return
            if self._state == "current":
                silence = time.monotonic() - self._last_pulse
                if silence > MISSED_PULSES * self.pulse_interval:
                    logger.warning(
                        "no pulse from the scheduler for %.0f s; computation closed", silence
                    )
                    self._end()
                    return

    def _show_output(self, output: p.Output) -> None:
        """Show remote output with its origin (`show_remote_output`); then the user's hook."""
        show_remote_output(output.location, output.stream, output.text, output.level)
        handler = self.output_handler
        if handler is not None:
            try:
                handler(output.location, output.stream, output.text)
            except Exception:
                logger.exception("output_handler failed")

    def _take_run_result(self, result: p.RunResult) -> None:
        future = self._waiting.get(result.rid)
        if future is None or future.done():
            return
        if not result.fanout:
            future.set_result(result.coro if result.coro is not None else result.error)
            return
        collected = self._fanouts.setdefault(result.rid, [])
        collected.append(result.coro)
        if len(collected) >= result.fanout:
            future.set_result(list(collected))


def _address(where: Any) -> str:
    try:
        return Location(str(where), 0).addr
    except ValueError:
        return str(where)
