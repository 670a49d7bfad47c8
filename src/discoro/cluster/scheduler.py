"""`Scheduler`: the asyncio shell around `SchedulerState` (reference 3.5).

It finds server processes (every peer that comes online is asked for a ``discoro_proc``
coroutine), turns what it receives into events for the state machine and sends the messages
the state machine decides. Private (``discoro.Scheduler()`` inside a client) or shared (the
``discoro`` program); clients find it by the name ``discoro_scheduler``.

Liveness (`discoro.cluster.scheduler_liveness`): a server's heartbeat notes count as its
pulses, a late tick (this process's loop was blocked) gives every process a fresh window, and
the coroutines of a server that ended itself over a runaway job are reported saying so.

Rejoining after a partition: a re-prober dials every process the state lost (with backoff
from `REPROBE_FIRST` seconds doubling to `REPROBE_MAX`, started over whenever another one is
lost) and introduces itself again to the hosts of ``nodes=`` (backoff up to
`REINTRODUCE_MAX`); a process that answers comes online again, is probed, found and set up
like a new one (as a new incarnation: `discoro.cluster.scheduler_processes`); one whose link
stayed up (stopped for a while, or silent without losing its connection) is probed at once.
Each dial is one TCP connection attempt, bounded by the network's dial timeout;
introductions are the bounded unicast datagrams of `Discovery.introduce`.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from discoro.cluster import interrupt
from discoro.cluster import protocol as p
from discoro.cluster.constants import (
    SCHEDULER_NAME,
    SERVER_NAME,
    MaxPulseInterval,
    MinPulseInterval,
    MsgTimeout,
)
from discoro.cluster.run_batch import RunBatcher
from discoro.cluster.scheduler_liveness import SchedulerLiveness
from discoro.cluster.scheduler_state import EndPassed, PeerLost, ProcFound, SchedulerState, Tick
from discoro.cluster.snapshot import find_running, snapshot
from discoro.cluster.status import Status
from discoro.core.coro import Coro
from discoro.core.handler import MessageHandler
from discoro.core.kernel import AsynCoro
from discoro.core.log import logger
from discoro.core.singleton import MetaSingleton
from discoro.core.stalls import ran_late
from discoro.net.fdlimit import raise_fd_limit
from discoro.net.location import Location, PeerStatus
from discoro.net.reannounce import backoff
from discoro.net.runtime import network_of

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

PROBE_DELAYS = (0.0, 0.1, 0.3, 0.6, 1.0, 2.0)  # a new peer may register its server late
REPROBE_FIRST = 1.0  # re-dial lost processes after this long, then twice as long ...
REPROBE_MAX = 5.0  # ... up to this: a healed partition is used again within seconds
REINTRODUCE_MAX = 30.0  # introductions to the ``nodes=`` hosts back off up to this

# The facade imports this module at a program's first ``discoro.X``, in its main thread: the
# one moment the cluster layer can install its Ctrl-C handler for clients
interrupt.arm()


class Scheduler(Status, metaclass=MetaSingleton):
    """The discoro scheduler of this process; ``Scheduler(**options)`` starts it once."""

    #: how to serve the status page; installed by `discoro.web` (a layer above this one)
    _web_starter: ClassVar[Callable[[Any, int, str, bytes], Any] | None] = None

    @classmethod
    def install_web(cls, starter: Callable[[Any, int, str, bytes], Any]) -> None:
        cls._web_starter = starter

    def __init__(
        self,
        nodes: list[str] | None = None,
        zombie_period: float | None = None,
        clean: bool = False,
        http_port: int | None = None,
        http_addr: str = "127.0.0.1",
        clock: Callable[[], float] = time.monotonic,
        pulse_interval: float | None = None,
        ping_interval: float = 0,
        discoronode_port: int | None = None,
        **options: Any,
    ) -> None:
        """``http_port`` (0: any free port): serve the status page (`discoro.web`) on
        ``http_addr``; beyond loopback it asks for a token derived from the secret.
        ``clock``: the monotonic time of the liveness rules (tests pass a manual one).
        Later versions' keywords: ``pulse_interval`` (how often idle server processes
        report, MinPulseInterval..MaxPulseInterval), ``ping_interval`` (announce the
        scheduler again every so many seconds), ``discoronode_port`` (the UDP port nodes
        listen at, when not ``udp_port``)."""
        if zombie_period is not None and zombie_period and zombie_period < 100:
            raise ValueError("zombie_period must be at least 100 seconds (or 0/None: never)")
        if pulse_interval is not None and not (
            MinPulseInterval <= pulse_interval <= MaxPulseInterval
        ):
            raise ValueError(
                f"pulse_interval must be {MinPulseInterval}..{MaxPulseInterval} seconds"
            )
        if ping_interval:
            options["announce_interval"] = ping_interval
        if discoronode_port:
            options["announce_port"] = discoronode_port
        raise_fd_limit()  # one link per server process
        kernel = AsynCoro._existing_instance()
        if kernel is None:
            kernel = AsynCoro(name=SCHEDULER_NAME, **options)
        elif not kernel.network_started:
            kernel.options.update(options)
            kernel.network()
        self.kernel: AsynCoro = kernel
        network = network_of(kernel)
        if kernel.name == SCHEDULER_NAME:
            directory = Path(network.dest_root) / "discoro" / "scheduler"
            if clean and directory.exists():
                shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.state = SchedulerState(zombie_period=zombie_period or None, clock=clock)
        self.state.idle_pulse_interval = float(pulse_interval or 0)
        self._nodes = list(nodes or [])
        self._redialing: set[Location] = set()  # lost processes being dialled now
        self._ready = asyncio.Event()
        # the request coroutine: a `MessageHandler`, so a request or report is acted on as
        # it arrives (no loop turn of its own per message: issue 9)
        self.coro = MessageHandler(self._handle, name="discoro_scheduler")
        self.state.me = self.coro
        self.liveness = SchedulerLiveness(self.state, self.coro)
        self._runs = RunBatcher(kernel.loop)  # a turn's runs to one server: one message
        self._exit_hooks: list[Callable[[Location, int, Coro], None]] | None = None  # (`_act`)
        self._registered = threading.Event()  # `_serve` has tried to register the name
        Coro(self._serve, self.coro)
        self.web: Any = None
        if http_port is not None:
            starter = type(self)._web_starter
            if starter is None:
                raise RuntimeError("the status page needs discoro.web: import discoro")
            self.web = starter(self, http_port, http_addr, network.secret)
        # made off the loop thread (``discoro scheduler``'s main thread), the scheduler is
        # ready once its name is registered, a few loop turns from now: a peer may ask for it
        # as soon as it is told the scheduler is ready
        if not kernel.on_loop_thread() and not self._registered.wait(MsgTimeout):
            logger.warning("%s: not registered within %g s", SCHEDULER_NAME, MsgTimeout)

    # -- the request coroutine --------------------------------------------------------------

    async def _serve(self, me: Coro, coro: Any = None) -> None:
        """Start the request coroutine ``me``: register it, follow peers, tick, re-probe."""
        coro.set_daemon()
        registered = me.register(SCHEDULER_NAME)
        self._registered.set()
        if registered != 0:
            logger.warning("another %s is registered in this process", SCHEDULER_NAME)
        # reports carry their incarnation, which the state checks: never fenced by the network
        network_of(self.kernel).fences.exempt.add(me._id)
        self.kernel.peer_status(me)
        self.liveness.watch(self.kernel)
        Coro(self._ticker, me)
        Coro(self._reprobe)
        for host in self._nodes:
            await self.kernel.peer(host, broadcast=True)
        logger.debug("discoro scheduler ready at %s", me.location)

    def _handle(self, message: object) -> None:
        """One message to the request coroutine: an event for the state machine, whose
        actions (messages) are sent at once."""
        if isinstance(message, p.StatusQuery):
            self._answer_status(message)
            return
        if isinstance(message, PeerStatus):
            if message.status == PeerStatus.Online:
                Coro(self._probe, message.location, self.coro)
                return
            event: Any = PeerLost(message.location)
        else:
            event = message
        try:
            actions = self.liveness.rewrite(self.state.handle(event, self.clock()))
        except Exception:
            logger.exception("scheduler failed to handle %r", event)
            return
        for action in actions:
            self._act(action.to, action.message)

    def _act(self, to: Coro, message: object) -> None:
        """Send one action's message; a job's end passed on to the status coroutine
        (`EndPassed`) reaches it as a `MonitorException` and counts as that job's end for
        the network's exit hooks (the client's exactly-once ledger), as a server's own
        report of it would."""
        if type(message) is p.Run:  # with the others placed in this loop turn, at its end
            self._runs.add(to, message)
            return
        self._runs.flush()  # anything else goes out after the runs placed before it
        passed = message if isinstance(message, EndPassed) else None
        if passed is not None:
            message = passed.notice
        if to.send(message) < 0:
            logger.debug("could not send %r to %s", type(message).__name__, to)
        elif passed is not None and isinstance(passed.location, Location):
            hooks = self._exit_hooks
            if hooks is None:  # the network's list, found once (an end passes once per run)
                hooks = self._exit_hooks = network_of(self.kernel).exit_hooks
            for hook in list(hooks):
                hook(passed.location, passed.coro_id, to)

    # -- status (``discoro status``, the status page) --------------------------------------

    def status(self) -> dict[str, Any]:
        """The JSON-able status snapshot (layout: `discoro.cluster.snapshot`). Call it on
        the kernel's loop thread (e.g. from a coroutine); elsewhere `status_threadsafe`."""
        info = {"name": self.kernel.name, "location": str(self.kernel.location or "")}
        return snapshot(self.state, info)

    def status_threadsafe(self, timeout: float | None = 5) -> dict[str, Any]:
        """`status` from any thread (blocks up to ``timeout`` seconds for the loop)."""
        return self._on_loop(self.status, timeout)

    def status_line(self) -> str:
        """One line (from any thread): the current computation's client, running
        coroutines, queued computations, nodes and server processes."""
        try:
            status = self.status_threadsafe()
        except Exception as exc:
            return f"no status: {exc!r}"
        info, totals = status["scheduler"], status["totals"]
        client = info.get("client")
        head = f"computation of the client at {client}" if client else "no computation"
        return (
            f"{head}; {totals['running']} coroutine(s) running, {info['queued']} queued "
            f"computation(s); {totals['nodes']} node(s), {totals['procs']} server process(es)"
        )

    def print_status(self) -> None:
        """Print `status_line` (later versions' ``Scheduler.print_status``)."""
        print(f"discoro: {self.status_line()}", flush=True)

    async def close(self, timeout: float = MsgTimeout) -> int:
        """Close the current computation now, terminating its jobs (the later versions'
        ``Scheduler.close()``, used with ``yield``); its client's status coroutine gets the
        close-time statuses and the next queued computation runs. 0 once the scheduler has
        closed it (or when none is current), -1 if that took longer than ``timeout``."""
        current, me = self.state.current, self.state.me
        if current is None or not isinstance(me, Coro):
            return 0

        async def confirmed(coro: Coro | None = None) -> int:
            assert coro is not None  # the kernel passes each coroutine itself
            return 0 if await coro.receive(timeout=timeout) is not None else -1

        waiter = Coro(confirmed)
        me.send(p.CloseRequest(current.spec.uid, 1, waiter, await_async=False, force=True))
        return int(await waiter.finish())

    def terminate_coros(self, coros: list[str]) -> list[str]:
        """Terminate the running coroutines whose ``str()`` is in ``coros`` (callable from
        any thread); the ones found. Each ends normally, so its process reports it done and
        the client's status coroutine gets its `MonitorException`."""

        def terminate() -> list[str]:
            found = find_running(self.state, list(coros))
            for handle in found:
                handle.terminate()
            return [str(handle) for handle in found]

        return self._on_loop(terminate, timeout=MsgTimeout)

    def _on_loop(self, func: Callable[[], T], timeout: float | None) -> T:
        if self.kernel.on_loop_thread():
            return func()

        async def call() -> T:
            return func()

        return self.kernel.run_sync(call(), timeout)

    def _answer_status(self, query: p.StatusQuery) -> None:
        try:
            report = p.StatusReport(self.status())
        except Exception:
            logger.exception("scheduler could not make its status snapshot")
            return
        if query.reply_to is None or query.reply_to.send(report) < 0:
            logger.debug("could not send the status to %s", query.reply_to)

    async def _probe(self, location: Any, me: Coro, coro: Any = None) -> None:
        """Ask the new peer at ``location`` for its server coroutine."""
        coro.set_daemon()
        for delay in PROBE_DELAYS:
            if delay:
                await coro.sleep(delay)
            server = await Coro.locate(SERVER_NAME, location, timeout=MsgTimeout)
            if server is not None:
                me.send(ProcFound(location, server))
                return
            if location not in network_of(self.kernel).peers:
                return  # gone again

    async def _reprobe(self, coro: Coro | None = None) -> None:
        """Dial the lost processes again and re-introduce this scheduler to the ``nodes=``
        hosts, with backoff (see the module docstring)."""
        assert coro is not None
        coro.set_daemon()
        delays = backoff(REPROBE_FIRST, REPROBE_MAX)
        introductions = backoff(REPROBE_FIRST, REINTRODUCE_MAX)
        next_introduction = self.clock() + next(introductions)
        known_lost: set[Location] = set()
        while True:
            await coro.sleep(next(delays))
            lost = set(self.state.lost_locations())
            if lost - known_lost:  # something changed: start over
                delays = backoff(REPROBE_FIRST, REPROBE_MAX)
                introductions = backoff(REPROBE_FIRST, REINTRODUCE_MAX)
                next_introduction = self.clock()
            known_lost = lost
            for location in lost - self._redialing:
                self._redialing.add(location)
                Coro(self._redial, location)
            if self._nodes and self.clock() >= next_introduction:
                next_introduction = self.clock() + next(introductions)
                for host in self._nodes:
                    await self.kernel.peer(host, broadcast=True)

    async def _redial(self, location: Location, coro: Coro | None = None) -> None:
        assert coro is not None
        coro.set_daemon()
        peer = network_of(self.kernel).peers.get(location)
        was_online = peer is not None and bool(peer.online)
        try:
            if await self.kernel.peer(location) == 0:  # it comes online: probed and found
                logger.debug("lost process %s reached again", location)
                if was_online and self.coro is not None:
                    # its link never went down (it was stopped, or silent only for a while):
                    # no Online news will come, so find it again now (set up anew)
                    Coro(self._probe, location, self.coro)
        finally:
            self._redialing.discard(location)

    async def _ticker(self, me: Coro, coro: Any = None) -> None:
        coro.set_daemon()
        previous = time.monotonic()
        while True:
            await coro.sleep(MinPulseInterval)
            now = time.monotonic()
            if ran_late(previous, now, MinPulseInterval):
                self.liveness.fresh_window()  # our loop was blocked, not the processes
            previous = now
            me.send(Tick(self.clock()))
