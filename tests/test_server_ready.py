"""A "ready" line means ready: when a server process (``discoro_proc <i> ready at ...``) or
the scheduler program (``discoro: scheduler ready at ...``) says so, its coroutine can be
located at that address at once. Each coroutine registers its name on the loop thread, a
few loop turns after the main thread started it; here a second after (the loop free
meanwhile), so a "ready" line printed before the name is there is caught every time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from discoro import AsynCoro, Coro, Location
from discoro.cluster.constants import SCHEDULER_NAME, SERVER_NAME
from netpeers import connect, run
from procs import PeerProcess

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(120)

LATE_SERVER = """
import sys
import discoro.cluster.server as server_module
import discoro.cluster.server_main as server_main

class LateToRegister(server_module.Server):
    async def _main(self, coro=None):
        await coro.sleep(1)  # widens the window between the coroutine's start and its name
        await super()._main(coro)

server_module.Server = LateToRegister
sys.exit(server_main.main(sys.argv[1:]))
"""

LATE_SCHEDULER = """
import sys
import discoro.cluster.scheduler as scheduler_module
from discoro.cli.scheduler import main

serve = scheduler_module.Scheduler._serve

async def late_serve(self, me, coro=None):
    await coro.sleep(1)  # widens the window between the coroutine's start and its name
    await serve(self, me, coro)

scheduler_module.Scheduler._serve = late_serve
sys.exit(main(sys.argv[1:]))
"""


def located_at_once(kernel: AsynCoro, name: str, location: Location) -> object:
    """``name`` at ``location``, asked once, at once (not there yet: None)."""
    connect(kernel, location)
    return run(lambda coro=None: (yield Coro.locate(name, location, 30)), timeout=40)


def test_a_ready_server_can_be_located(net_kernel: AsynCoro, tmp_path: Path, udp_port: int) -> None:
    options = f'{{"node": "127.0.0.1", "udp_port": {udp_port}, "dest_path": "{tmp_path}"}}'
    with PeerProcess(LATE_SERVER, "--index", "1", "--prefix", "t", "--options", options) as proc:
        match = proc.expect(r"^discoro_proc 1 ready at (\S+):(\d+) pid (\d+)$", timeout=60)
        location = Location(match[1], int(match[2]))
        found = located_at_once(net_kernel, SERVER_NAME, location)
        assert isinstance(found, Coro) and found.location == location, found


def test_a_ready_scheduler_can_be_located(net_kernel: AsynCoro, udp_port: int) -> None:
    args = ("scheduler", "-i", "127.0.0.1", "-u", str(udp_port), "--zombie_period", "0")
    with PeerProcess(LATE_SCHEDULER, *args) as proc:
        match = proc.expect(r"^discoro: scheduler ready at (127\.0\.0\.1):(\d+)$", timeout=60)
        location = Location(match[1], int(match[2]))
        found = located_at_once(net_kernel, SCHEDULER_NAME, location)
        assert isinstance(found, Coro) and found.location == location, found
