"""A server process's heartbeat thread and its answer to a runaway job (issue 10).

`start` runs the process's `HeartbeatThread` (`discoro.net.liveness`): while user code keeps
the event loop busy (a ``time.sleep(20)``, a long computation), the thread still tells every
peer once a second that the process lives, so long jobs are not failures.

Runaway jobs: when a coroutine here is terminated and the loop does not run at all for
`TERMINATE_GRACE` seconds after that, the terminate cannot take effect. Then `end_wedged`
tells the peers (``ending`` notes naming the terminated coroutines: the scheduler reports them
as terminated and the process's other coroutines as lost), says so on stderr (the node shows
it) and kills this process with SIGKILL, which nothing running here can delay; the node
program starts a new server, which joins like any new process. A busy loop alone never ends
the process: only a terminate it cannot honour.

A job that computes from its first step would also keep the loop from writing the messages
that hand it out (``JobStarted``, ``RunResult``): `hold_until_written` holds its first step
until they went to the socket, so its ``run`` always gets a reply. (Not needed, and not done,
when the network runs on a transport thread, as in a server that `server_main` starts.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING

from discoro.cluster.constants import TERMINATE_GRACE, MsgTimeout
from discoro.net.runtime import network_of, network_thread

if TYPE_CHECKING:
    import asyncio

    from discoro.core.coro import Coro
    from discoro.core.kernel import AsynCoro
    from discoro.net.liveness import Liveness

_releasing: set[asyncio.Task[None]] = set()  # the tasks of `hold_until_written`


def start(kernel: AsynCoro) -> None:
    """Start the heartbeat thread of this server process (loop thread, network started)."""
    liveness: Liveness = network_of(kernel).liveness

    def end_wedged(coros: list[int], stuck: float) -> None:
        if liveness.thread is not None:
            liveness.thread.send_ending(coros)
        with contextlib.suppress(OSError, ValueError):  # our output may be gone
            print(
                f"discoro_proc: coroutine(s) {', '.join(map(str, coros))} were terminated while "
                f"a job kept the event loop busy for {stuck:.1f} s; ending this process "
                "(its node starts a new one)",
                file=sys.__stderr__,
                flush=True,
            )
        os.kill(os.getpid(), signal.SIGKILL)

    liveness.start_heartbeat(TERMINATE_GRACE, end_wedged)


def hold_until_written(kernel: AsynCoro, job: Coro, told: tuple[Coro, ...]) -> None:
    """Hold ``job`` (not started yet) before its first step until what was sent to the
    coroutines ``told`` went to the socket (at most `MsgTimeout` seconds); when the links
    exist, one flush does it and nothing is held."""
    if network_thread(kernel) is not None:
        return  # the network writes them on its own thread, however long the job blocks
    network = network_of(kernel)
    waits = [coro.location for coro in told if coro._remote]
    waits = [location for location in waits if not network.flushed(location)]
    if not waits:
        return
    gate: asyncio.Future[None] = network.loop.create_future()
    job._hold = gate

    async def release() -> None:
        for location in waits:
            await network.written(location, MsgTimeout)
        if not gate.done():
            gate.set_result(None)

    task = network.loop.create_task(release())
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)
