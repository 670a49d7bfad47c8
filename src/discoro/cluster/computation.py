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
why: each is logged as a warning and kept in `Computation.last_error`.

Waiting (later-versions D3, `discoro.cluster.slots`): ``run``/``run_async`` without a target
wait at the scheduler for the first initialized server, ``run_result*`` for a free CPU slot;
those waits have no deadline but end when the computation does (closed, or its scheduler
lost); so does a run without a target while every process's loop is stuck in user code.
``run_at``/``run_async_at`` never wait for a slot: an unknown or uninitialized target fails
at once; one whose loop is stuck (`discoro.cluster.loop_watch`) is waited for up to
``timeout``, then fails with the reason. A fan-out that no process can take yet waits up to
``timeout``; the client allows `REPLY_GRACE` more before it gives up on a reply that has a
deadline.

``close(await_async=False)`` waits, without a deadline, until the scheduler has waited for
the CPU jobs (and with ``await_async`` every job) and closed (`discoro.cluster.closing`);
what it waits for is logged every `MsgTimeout`. Then, up to ``timeout``, until the servers'
reports of every job's end (they travel on the servers' links, not the scheduler's) are in
a local status coroutine's mailbox, so none comes after ``close()`` returned. At interpreter
exit it waits the same way but forces the close (terminating the jobs) after 5 pulse
intervals.

Signature (later-versions D2): the seed's positional order, then the later versions'
parameters as keywords only. A number or a list in the ``status_coro`` position is a later
program's positional argument and raises `TypeError` naming the keyword to use.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import math
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
from discoro.cluster.find_scheduler import find_scheduler
from discoro.cluster.replies import Replies
from discoro.cluster.results import ResultRuns, Target, target_of
from discoro.cluster.setup_options import SetupOptions
from discoro.cluster.shipping import package, pickle_arguments, pickle_function
from discoro.core.coro import Coro
from discoro.core.kernel import AsynCoro
from discoro.core.log import logger
from discoro.net.location import Location, as_location
from discoro.net.runtime import network_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from discoro.cluster.job_ledger import JobLedger


# the scheduler answers a waiting run at most a tick (1 s) after its deadline; beyond this
# much more, the scheduler is taken to be unreachable
REPLY_GRACE = 3 * MinPulseInterval
AT_EXIT_WAITS = 5  # pulse intervals a close at interpreter exit waits for jobs (D4)


def _name(func: object) -> str:
    return str(getattr(func, "__name__", func))


class Computation(Replies, ResultRuns):
    """What a client runs on the cluster: ``components`` (functions, classes, modules and file
    paths shipped to every server process), an optional ``status_coro`` that receives
    `StatusMessage` objects and a `MonitorException` for every remote coroutine, and the bounds
    ``timeout`` (the waits for answers, 1 to 100 s) and ``pulse_interval`` (liveness, 1 to
    100 s).

    Keyword-only (the later versions' parameters): ``remote_output``, ``node_allocations``,
    ``node_setup``, ``server_setup``, ``disable_nodes``, ``disable_servers`` and
    ``peers_communicate`` (kept as attributes of the same names).

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
        *,
        remote_output: bool = True,
        node_allocations: list[object] | None = None,
        node_setup: Callable[..., object] | None = None,
        server_setup: Callable[..., object] | None = None,
        disable_nodes: bool = False,
        disable_servers: bool = False,
        peers_communicate: bool = False,
    ) -> None:
        """``remote_output``: what the remote coroutines print and log is shown here on
        stdout/stderr, prefixed with the process it came from (and passed to
        ``output_handler`` when set).

        The later versions' keywords (`discoro.cluster.setup_options`): ``node_allocations``
        (`DiscoroNodeAllocate` rules, or strings), ``node_setup`` (run once per node, its
        globals seen by the node's servers), ``server_setup`` (run in every server before
        it takes jobs), ``disable_nodes`` / ``disable_servers`` (wait for `enable_node` /
        `enable_server`; they need ``status_coro``), ``peers_communicate`` (connect the
        servers to each other)."""
        _check_positional(status_coro, timeout, pulse_interval, zombie_period)
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
        setup = SetupOptions.check(
            status_coro,
            node_allocations,
            node_setup,
            server_setup,
            disable_nodes,
            disable_servers,
            peers_communicate,
        )
        components = setup.with_hooks(components)
        self._setup_options = setup
        self._code, self._names, self._files = package(components)
        self._components: dict[str, Any] = dict.fromkeys(self._names)
        self._runnable: set[str] = set()  # components found to be coroutine functions
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
        self.node_allocations = list(setup.rules)  # strings turned into rules
        self.node_setup = node_setup
        self.server_setup = server_setup
        self.disable_nodes = disable_nodes
        self.disable_servers = disable_servers
        self.peers_communicate = peers_communicate
        # called with (location, stream, text) for each remote `Output` (stream: "stdout",
        # "stderr" or "log"; text: whole lines), on the kernel's loop thread
        self.output_handler: Callable[[object, str, str], object] | None = None
        self.scheduler: Coro | None = None
        self._uid = uuid.uuid4().hex
        self._rids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[object]] = {}
        self._fanouts: dict[int, list[p.RunResult]] = {}
        self._values: dict[int, asyncio.Future[object]] = {}  # run_result*: rid -> its end
        self._run_args: dict[int, tuple[tuple[object, ...], dict[str, object]]] = {}
        self._router: Coro | None = None
        self._scheduled: asyncio.Future[str] | None = None
        self._state = "new"
        self._last_pulse = 0.0
        self._last_error: str | None = None
        self._lost_reason: str | None = None
        self._ledger: JobLedger[Coro] | None = None
        self._close_reports = 0
        self._ends_waiter: asyncio.Future[object] | None = None
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

    async def schedule(
        self, location: Location | str | None = None, timeout: float | None = None
    ) -> int:
        """Submit to the scheduler and wait for this computation's turn; 0 or -1.
        ``location``: the scheduler's (a `Location` or ``"host:port"``, e.g. what ``discoro
        ssh`` printed or `SSHCluster.scheduler_location`); None finds it by discovery."""
        if location is not None:
            location = as_location(location)
        if self._lost_reason is not None:
            self._last_error = self._lost_reason
            logger.warning("cannot schedule: %s", self._lost_reason)
            return -1
        if self._state != "new":
            logger.warning("computation already scheduled")
            return -1
        scheduler = await find_scheduler(location, self.timeout)
        if not isinstance(scheduler, Coro):
            logger.warning("no discoro scheduler found%s", f" at {location}" if location else "")
            return -1
        self.scheduler = scheduler
        kernel = AsynCoro.instance()
        network_of(kernel).liveness.start_heartbeat()  # busy client code is not a lost client
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
        self._setup_options.fill(spec)
        self._state = "queued"
        interrupt.opened(self)
        if await scheduler.deliver(p.Submit(spec), timeout=self.timeout) != 1:
            logger.warning("the scheduler at %s did not take the computation", scheduler.location)
            self._end()
            return -1
        kernel.add_shutdown_hook(self._close_at_exit, AT_EXIT_WAITS * self.pulse_interval + 60)
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
        """Run ``func(*args, **kwargs)`` at a node (address string: a process with a free
        CPU slot, else its least loaded one) or a process (`Location`). A remote `Coro`, or
        a failure tuple ``(exception class, function name, reason)``; None at once when the
        target is unknown or not initialized, and after ``timeout`` when its event loop
        (every ready one of the node's) stays stuck in user code meanwhile."""
        return await self._run_one(target_of(where), func, args, kwargs)

    async def run(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run on a free CPU slot (the least CPU-loaded node's free process with fewest
        jobs), else at the least loaded process of the least loaded node; never waits for a
        slot, but waits for the first initialized process (None if the computation closes
        first)."""
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
        return await self._run_many(("node_procs", target_of(addr)[1]), func, args, kwargs)

    run_node_servers = run_node_procs

    def enable_node(self, addr: object, *setup_args: object) -> None:
        """Let the node at ``addr`` (an address, a host name or a `Location`) be set up
        (``disable_nodes``): ``node_setup(*setup_args)`` runs there. Ignored unless the node
        waits for it. A plain call (yielding its None is harmless)."""
        self._enable(p.EnableNode, self._setup_options.node_address(addr), setup_args)

    def enable_server(self, location: Location, *setup_args: object) -> None:
        """Let the server at ``location`` be set up (``disable_servers``):
        ``server_setup(*setup_args)`` runs there. Ignored unless it waits for it."""
        if not isinstance(location, Location):
            raise TypeError(f"enable_server() needs a server Location, not {location!r}")
        self._enable(p.EnableServer, location, setup_args)

    def _enable(
        self,
        kind: type[p.EnableNode] | type[p.EnableServer],
        where: str | Location,
        args: tuple[object, ...],
    ) -> None:
        # a status coroutine may hear NodeDiscovered before schedule() has returned: while
        # queued the request goes too (the scheduler takes it only for the current one)
        why = None if self._state == "queued" else self._not_current()
        if why is not None or self.scheduler is None:
            logger.warning("%s(%s) ignored: %s", kind.__name__, where, why or "not scheduled")
            return
        self.scheduler.send(kind(self._uid, where, pickle_arguments(args, {}, [])))  # type: ignore[arg-type]

    async def nodes(self) -> list[str]:
        """Addresses of the nodes initialized for this computation ([] if not current)."""
        return await self._list("nodes")

    async def procs(self) -> list[Location]:
        """Locations of the processes initialized for this computation."""
        return await self._list("procs")

    servers = procs

    async def close(self, await_async: bool = False) -> int:
        """Close the computation, so the scheduler can run the next one: after its CPU jobs
        (``run``, ``run_at``, ``run_result*``) have ended, and with ``await_async`` its
        other jobs too (else those are terminated). Returns once the scheduler has closed
        it and sent the status coroutine the close-time statuses, and (a local status
        coroutine) every job's end is in its mailbox, or ``timeout`` passed waiting for
        them."""
        if self._state in ("new", "closed") or self.scheduler is None:
            return 0
        answer = await self._request_close(await_async, force=False, timeout=math.inf)
        if answer is not None:
            await self._await_job_ends(self.timeout)
        # the values of the run_result* jobs the close waited for come straight from their
        # servers, not through the scheduler: let them arrive before every wait ends
        arriving = [future for future in self._values.values() if not future.done()]
        if answer is not None and arriving:
            await asyncio.wait(arriving, timeout=self.timeout)
        self._end()
        return 0

    async def close_now(self) -> int:
        """Close at once, terminating the jobs still running (Ctrl-C does this). Returns
        as `close` does: every job's end in a local status coroutine's mailbox (or
        ``timeout`` passed waiting for them)."""
        if self._state in ("new", "closed") or self.scheduler is None:
            return 0
        answer = await self._request_close(False, force=True, timeout=self.timeout + REPLY_GRACE)
        if answer is not None:
            await self._await_job_ends(self.timeout)
        self._end()
        return 0

    async def _request_close(self, await_async: bool, force: bool, timeout: float) -> object:
        assert self.scheduler is not None
        rid = next(self._rids)
        future = self._expect(rid)
        request = p.CloseRequest(self._uid, rid, self._router, await_async, force)
        self.scheduler.send(request)
        return await self._wait(future, rid, timeout)

    # -- internals ------------------------------------------------------------------------------

    def _request_parts(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        name = getattr(func, "__name__", str(func))
        if isinstance(func, str):
            if func not in self._components:
                raise ValueError(f"{func!r} is not one of the computation's components")
            return func, name
        shipped = self._components.get(name) is func
        if shipped and name in self._runnable:  # checked at its first run
            return name, name
        if not (inspect.isgeneratorfunction(func) or inspect.iscoroutinefunction(func)):
            raise TypeError(f"{name} must be a generator function or an async function")
        if shipped:
            self._runnable.add(name)
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
        where: Target,
        func: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
        fanout: bool,
        kind: str = "cpu",
    ) -> tuple[int, object]:
        """Send a `RunRequest`; its request id and the scheduler's refusal (`p.Reply`), the
        `p.RunResult` (single) or the list of them (fan-out); None without an answer; a str
        if the request could not even be made (the reason). A ``result`` run's end is
        awaited in ``_values[rid]``, registered before the request goes."""
        why = self._not_current()
        if why is not None:
            return 0, why
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
        if kind == "result":
            self._values[rid] = AsynCoro.instance().loop.create_future()
        self.scheduler.send(
            p.RunRequest(self._uid, rid, where, func_ref, name, payload, self._router, extra, kind)
        )
        held = where[0] == "any" or kind == "result"  # the scheduler may hold it, no deadline
        answer = await self._wait(future, rid, math.inf if held else self.timeout + REPLY_GRACE)
        if answer is None and collected:
            return rid, list(collected)  # some processes answered: their coroutines run
        return rid, answer

    async def _run_one(
        self, where: Target, func: object, args: tuple[object, ...], kwargs: dict[str, object]
    ) -> object:
        return (await self._run_single(where, func, args, kwargs, "cpu"))[1]

    async def _run_single(
        self,
        where: Target,
        func: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
        kind: str,
    ) -> tuple[int, object]:
        """(request id, the remote `Coro` or the failure reply) of one run of ``kind``."""
        try:
            rid, answer = await self._request_run(where, func, args, kwargs, False, kind)
        except Exception as exc:
            self._failed(func, f"{type(exc).__name__}: {exc}")
            return 0, (type(exc), _name(func), str(exc))
        if isinstance(answer, p.RunResult) and isinstance(answer.coro, Coro):
            self._last_error = None
            return rid, answer.coro
        if isinstance(answer, p.RunResult) and answer.error is not None:
            self._failed(func, str(answer.error[2]))
            return rid, answer.error
        self._failed(func, self._reason(answer))
        return rid, None

    async def _run_many(
        self,
        where: tuple[object, ...],
        func: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
    ) -> list[Coro]:
        try:
            _, answer = await self._request_run(where, func, args, kwargs, True, "async")
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
        for future in [*self._waiting.values(), *self._values.values()]:
            if not future.done():
                future.set_result(None)
        self._stop_router()
        if self._router is not None:
            self._router.terminate()
            self._router = None

    async def _close_at_exit(self) -> None:
        """Close at interpreter exit: wait for the CPU jobs as `close` does, but after
        `AT_EXIT_WAITS` pulse intervals force the close (terminating them)."""
        if self._state == "queued":
            await self.close()
        if self._state != "current" or self.scheduler is None:
            return
        patience = AT_EXIT_WAITS * self.pulse_interval
        answer = await self._request_close(False, force=False, timeout=patience)
        if answer is None and self._state == "current":
            logger.warning(
                "closing at exit: jobs still running after %g s; terminating them", patience
            )
            answer = await self._request_close(
                False, force=True, timeout=self.timeout + REPLY_GRACE
            )
        if answer is not None:
            await self._await_job_ends(self.timeout)
        self._end()


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


def _check_positional(
    status_coro: object, timeout: object, pulse_interval: object, zombie_period: object
) -> None:
    """A later (4.5.6) program's positional arguments in the seed's order fail clearly: its
    second parameter was ``pulse_interval`` and its third ``node_allocations``."""
    if isinstance(status_coro, int | float):
        raise TypeError(
            f"Computation(): the 2nd positional argument is status_coro (a Coro), not "
            f"{status_coro!r}; pass pulse_interval={status_coro!r} as a keyword"
        )
    if isinstance(status_coro, list | tuple):
        raise TypeError(
            "Computation(): the 2nd positional argument is status_coro (a Coro), not a list; "
            "pass node_allocations=[...] as a keyword"
        )
    for name, value in (("timeout", timeout), ("pulse_interval", pulse_interval)):
        if isinstance(value, list | tuple):
            raise TypeError(
                f"Computation(): {name} must be a number, not a list; pass "
                "node_allocations=[...] as a keyword"
            )
    if zombie_period is not None and not isinstance(zombie_period, int | float):
        raise TypeError(f"Computation(): zombie_period must be a number, not {zombie_period!r}")
