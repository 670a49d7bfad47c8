"""`Scheduler`: the asyncio shell around `SchedulerState` (reference 3.5).

It finds server processes (every peer that comes online is asked for a ``discoro_proc``
coroutine), turns what it receives into events for the state machine and sends the messages
the state machine decides. Private (``discoro.Scheduler()`` inside a client) or shared (the
``discoro`` program); clients find it by the name ``discoro_scheduler``.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

from discoro.cluster.constants import SCHEDULER_NAME, SERVER_NAME, MinPulseInterval, MsgTimeout
from discoro.cluster.scheduler_state import PeerLost, ProcFound, SchedulerState, Tick
from discoro.cluster.status import Status
from discoro.core.coro import Coro
from discoro.core.kernel import AsynCoro
from discoro.core.log import logger
from discoro.core.singleton import MetaSingleton
from discoro.net.location import PeerStatus

PROBE_DELAYS = (0.0, 0.1, 0.3, 0.6, 1.0, 2.0)  # a new peer may register its server late


class Scheduler(Status, metaclass=MetaSingleton):
    """The discoro scheduler of this process; ``Scheduler(**options)`` starts it once."""

    def __init__(
        self,
        nodes: list[str] | None = None,
        zombie_period: float | None = None,
        clean: bool = False,
        **options: Any,
    ) -> None:
        if zombie_period is not None and zombie_period and zombie_period < 100:
            raise ValueError("zombie_period must be at least 100 seconds (or 0/None: never)")
        kernel = AsynCoro._existing_instance()
        if kernel is None:
            kernel = AsynCoro(name=SCHEDULER_NAME, **options)
        elif not kernel.network_started:
            kernel.options.update(options)
            kernel.network()
        self.kernel = kernel
        network = kernel.network()
        if kernel.name == SCHEDULER_NAME:
            directory = Path(network.dest_root) / "discoro" / "scheduler"
            if clean and directory.exists():
                shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True, exist_ok=True)
        self.state = SchedulerState(zombie_period=zombie_period or None)
        self._nodes = list(nodes or [])
        self._ready = asyncio.Event()
        self.coro = Coro(self._serve)

    # -- the request coroutine --------------------------------------------------------------

    async def _serve(self, coro: Any = None) -> None:
        coro.set_daemon()
        if coro.register(SCHEDULER_NAME) != 0:
            logger.warning("another %s is registered in this process", SCHEDULER_NAME)
        self.state.me = coro
        self.kernel.peer_status(coro)
        Coro(self._ticker, coro)
        for host in self._nodes:
            await self.kernel.peer(host, broadcast=True)
        logger.debug("discoro scheduler ready at %s", coro.location)
        while True:
            message = await coro.receive()
            if isinstance(message, PeerStatus):
                if message.status == PeerStatus.Online:
                    Coro(self._probe, message.location, coro)
                    continue
                event: Any = PeerLost(message.location)
            else:
                event = message
            try:
                actions = self.state.handle(event)
            except Exception:
                logger.exception("scheduler failed to handle %r", event)
                continue
            for action in actions:
                if action.to.send(action.message) < 0:
                    logger.debug(
                        "could not send %r to %s", type(action.message).__name__, action.to
                    )

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
            if location not in self.kernel.network().peers:
                return  # gone again

    async def _ticker(self, me: Coro, coro: Any = None) -> None:
        coro.set_daemon()
        while True:
            await coro.sleep(MinPulseInterval)
            me.send(Tick(time.monotonic()))
