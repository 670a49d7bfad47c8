"""`Computation`: what a client ships to the servers and how it runs coroutines there
(reference 3.3, 3.4).

Every method is an ``async def``: a generator coroutine ``yield``s it, an ``async def``
coroutine ``await``s it. Replies from the scheduler and the servers arrive at one router
coroutine per computation, which resolves the waiting call by request id; every wait is
bounded by ``timeout``, and a scheduler that stops pulsing (or goes offline) ends the
computation, so nothing waits forever.

Failures keep the seed's return values (``run``/``run_at``: ``None``, or the
``(exception class, function name, traceback text)`` tuple when the coroutine could not be
created; the list methods: the coroutines that were created, maybe ``[]``) and always say
why: each is logged as a warning and kept in `Computation.last_error`. A run that no process
can take yet waits at the scheduler, up to ``timeout`` (`discoro.cluster.placement`), so the
reply may take that long; the client allows `REPLY_GRACE` more before it gives up.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

from discoro.cluster import interrupt, sources
from discoro.cluster import protocol as p
from discoro.cluster.constants import (
    SCHEDULER_NAME,
    MaxPulseInterval,
    MinPulseInterval,
    MsgTimeout,
)
from discoro.cluster.replies import Replies
from discoro.cluster.shipping import package, pickle_arguments, pickle_function
from discoro.core.coro import Coro
from discoro.core.kernel import AsynCoro
from discoro.core.log import logger
from discoro.net.location import Location

if TYPE_CHECKING:
    from collections.abc import Callable


# the scheduler answers a waiting run at most a tick (1 s) after its deadline; beyond this
# much more, the scheduler is taken to be unreachable
REPLY_GRACE = 3 * MinPulseInterval


def _name(func: object) -> str:
    return str(getattr(func, "__name__", func))


class Computation(Replies):
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
        code_objects = []
        for component in components if isinstance(components, list) else [components]:
            if inspect.isfunction(component):
                self._components[component.__name__] = component
            if not isinstance(component, str) and not inspect.ismodule(component):
                code_objects.append(component if callable(component) else type(component))
        self._sources = sources.collect(code_objects)
        self.status_coro = status_coro
        self.timeout = timeout
        self.pulse_interval = pulse_interval
        self.zombie_period = zombie_period
        self.remote_output = remote_output
        # called with (location, stream, text) for each remote `Output` (stream: "stdout",
        # "stderr" or "log"; text: whole lines), on the kernel's loop thread
        self.output_handler: Callable[[object, str, str], object] | None = None
        self.scheduler: Coro | None = None
        self._uid = uuid.uuid4().hex
        self._rids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[object]] = {}
        self._fanouts: dict[int, list[p.RunResult]] = {}
        self._run_args: dict[int, tuple[tuple[object, ...], dict[str, object]]] = {}
        self._router: Coro | None = None
        self._scheduled: asyncio.Future[str] | None = None
        self._state = "new"
        self._last_pulse = 0.0
        self._last_error: str | None = None
        self._lost_reason: str | None = None
        interrupt.arm()  # Ctrl-C closes this computation (when made on the main thread)

    @property
    def last_error(self) -> str | None:
        """Why the latest ``run*`` call failed, or None if it succeeded: the scheduler's
        reason (e.g. "no process is ready (2 initializing) (waited 10 s)", "no node: ...",
        "the computation is closed"), or the remote traceback text when the coroutine could
        not be created. Once the scheduler is lost (its process died, or it sent no pulse
        for 5 pulse intervals), the computation is closed: this says so ("the scheduler at
        ... went offline; ..."), every later ``schedule``/``run*`` call fails at once with
        that reason, and the coroutines that were running report `SchedulerLost` to their
        monitors. A list method that created fewer coroutines than it had targets
        keeps the reason of the last one that failed."""
        return self._last_error

    # -- scheduling ---------------------------------------------------------------------------

    async def schedule(self, location: Location | None = None, timeout: float | None = None) -> int:
        """Submit to the scheduler and wait for this computation's turn; 0 or -1."""
        if self._lost_reason is not None:
            self._last_error = self._lost_reason
            logger.warning("cannot schedule: %s", self._lost_reason)
            return -1
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
        self._router = self._start_router()
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
            self._sources,
            _client_name(kernel),
            time.time(),
        )
        self._state = "queued"
        interrupt.opened(self)
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
            self._last_error = self._lost_reason or str(error)
            logger.warning("computation not scheduled: %s", self._last_error)
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

    def _not_current(self) -> str | None:
        """Why this computation cannot run anything now (None: it can)."""
        if self._state == "current" and self.scheduler is not None:
            return None
        if self._lost_reason is not None:
            return self._lost_reason
        return {
            "new": "the computation is not scheduled",
            "queued": "the computation is not scheduled yet (it waits for its turn)",
        }.get(self._state, "the computation is closed")

    def _failed(self, func: object, reason: str) -> None:
        self._last_error = reason
        logger.warning("run of %s failed: %s", _name(func), reason)

    async def _request_run(
        self,
        where: tuple[object, ...],
        func: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
        fanout: bool,
    ) -> object:
        """Send a `RunRequest`; the scheduler's refusal (`p.Reply`), the `p.RunResult`
        (single) or the list of them (fan-out); None without an answer; a str if the request
        could not even be made (the reason)."""
        why = self._not_current()
        if why is not None:
            return why
        assert self.scheduler is not None
        func_ref, name = self._request_parts(func, args, kwargs)
        payload = pickle_arguments(args, kwargs, [])
        extra = {} if isinstance(func_ref, str) else sources.collect([func], self._sources)
        rid = next(self._rids)
        future = self._expect(rid)
        self._run_args[rid] = (args, kwargs)  # for CoroCreated (`_take_run_result`)
        collected: list[p.RunResult] = []
        if fanout:
            self._fanouts[rid] = collected
        self.scheduler.send(
            p.RunRequest(self._uid, rid, where, func_ref, name, payload, self._router, extra)
        )
        answer = await self._wait(future, rid, self.timeout + REPLY_GRACE)
        if answer is None and collected:
            return list(collected)  # some processes answered: their coroutines run
        return answer

    async def _run_one(
        self,
        where: tuple[object, ...],
        func: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
    ) -> object:
        try:
            answer = await self._request_run(where, func, args, kwargs, fanout=False)
        except Exception as exc:
            self._failed(func, f"{type(exc).__name__}: {exc}")
            return (type(exc), _name(func), str(exc))
        if isinstance(answer, p.RunResult) and isinstance(answer.coro, Coro):
            self._last_error = None
            return answer.coro
        if isinstance(answer, p.RunResult) and answer.error is not None:
            self._failed(func, str(answer.error[2]))
            return answer.error
        self._failed(func, self._reason(answer))
        return None

    async def _run_many(
        self,
        where: tuple[object, ...],
        func: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
    ) -> list[Coro]:
        try:
            answer = await self._request_run(where, func, args, kwargs, fanout=True)
        except Exception as exc:
            self._failed(func, f"{type(exc).__name__}: {exc}")
            return []
        if not isinstance(answer, list):
            self._failed(func, self._reason(answer))
            return []
        self._last_error = None
        coros = []
        for result in answer:
            if isinstance(result.coro, Coro):
                coros.append(result.coro)
            elif result.error is not None:
                self._failed(func, str(result.error[2]))
        return coros

    def _reason(self, answer: object) -> str:
        if isinstance(answer, str):
            return answer
        if isinstance(answer, p.Reply) and answer.error:
            return answer.error
        if self._state != "current":
            return self._lost_reason or "the computation is closed"
        return f"no reply from the scheduler within {self.timeout + REPLY_GRACE:g} s"

    async def _list(self, what: str) -> list[Any]:
        if self._state != "current" or self.scheduler is None:
            return []
        rid = next(self._rids)
        future = self._expect(rid)
        self.scheduler.send(p.ListRequest(self._uid, rid, what, self._router))
        reply = await self._wait(future, rid)
        value = reply.value if isinstance(reply, p.Reply) else None
        return value if isinstance(value, list) else []

    def _end(self) -> None:
        self._state = "closed"
        interrupt.closed(self)
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


def _client_name(kernel: AsynCoro) -> str:
    """How status displays name this client: the kernel's own ``name`` when the program
    gave one (not the one a private scheduler gives it), else its program and process id
    at its location."""
    name = kernel.options.get("name")
    if name and name != SCHEDULER_NAME:
        return str(name)
    argv0 = sys.argv[0] if sys.argv else ""
    program = "python " + argv0 if argv0 in ("-c", "-m", "-") else os.path.basename(argv0)
    return f"{program} (pid {os.getpid()}) at {kernel.location}"


def _address(where: Any) -> str:
    try:
        return Location(str(where), 0).addr
    except ValueError:
        return str(where)
