"""``Computation.schedule("host:port")`` started a moment before its scheduler (a batch script
that starts the scheduler in the background, then the client) keeps asking until
``timeout``, and says so once; with no scheduler coming, it gives up after ``timeout``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from procs import PeerProcess, free_port

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(90)

CLIENT = """
import sys, discoro

def main(coro=None):
    computation = discoro.Computation([], timeout=int(sys.argv[3]))
    print("SCHEDULED", (yield computation.schedule("127.0.0.1:" + sys.argv[2])), flush=True)
    if computation.scheduler is not None:
        yield computation.close()

discoro.AsynCoro(node="127.0.0.1", udp_port=int(sys.argv[1]))
discoro.Coro(main).value()
"""
SCHEDULER = "import sys\nfrom discoro.cli.scheduler import main\nsys.exit(main(sys.argv[1:]))\n"


def test_schedule_waits_for_a_scheduler_that_starts_later(
    cluster_secret: str, udp_port: int, tmp_path: Path
) -> None:
    port = free_port()
    with PeerProcess(CLIENT, str(udp_port), str(port), "30") as client:
        # its first question found nobody: the scheduler starts only now
        client.expect(rf"no scheduler at 127\.0\.0\.1:{port} yet; asking again", timeout=30)
        args = ("-i", "127.0.0.1", "-u", str(udp_port), "-t", str(port))
        with PeerProcess(SCHEDULER, *args, "--dest_path", str(tmp_path)) as scheduler:
            scheduler.expect(r"^discoro: scheduler ready at 127\.0\.0\.1:\d+$", timeout=30)
            client.expect(r"^SCHEDULED 0$", timeout=30)
            assert client.wait(30) == 0
            scheduler.write("quit")
            assert scheduler.wait(20) == 0
    assert not any("no discoro scheduler found" in line for line in client.output)


def test_schedule_gives_up_after_its_timeout(cluster_secret: str, udp_port: int) -> None:
    with PeerProcess(CLIENT, str(udp_port), str(free_port()), "2") as client:
        client.expect(r"no discoro scheduler found at 127\.0\.0\.1:\d+", timeout=30)
        client.expect(r"^SCHEDULED -1$", timeout=10)
        assert client.wait(30) == 0
