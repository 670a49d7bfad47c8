"""The shared scheduler program's later-version options (section 5, D11): separate discovery
ports for nodes and schedulers (``--scheduler_port`` / ``--discoronode_port``), the
``status`` command, ``--daemon``; real programs on 127.0.0.1."""

from __future__ import annotations

import signal
import socket
import time
from typing import TYPE_CHECKING

import pytest

from discoro.net.discovery import ANNOUNCE_DELAYS
from procs import PeerProcess, free_port
from test_partition_announce import Counter

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(60)

NODE = "import sys\nfrom discoro.cli.node import main\nsys.exit(main(sys.argv[1:]))\n"
SCHEDULER = "import sys\nfrom discoro.cli.scheduler import main\nsys.exit(main(sys.argv[1:]))\n"
SCHEDULER_READY = r"^discoro: scheduler ready at 127\.0\.0\.1:\d+$"


def test_nodes_and_scheduler_on_separate_discovery_ports(
    cluster_secret: str, tmp_path: Path
) -> None:
    node_port, scheduler_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)

    def node(name: str) -> PeerProcess:
        root = tmp_path / name
        root.mkdir()
        return PeerProcess(
            NODE,
            *("-i", "127.0.0.1", "-u", str(node_port), "--dest_path", str(root), "-n", name),
            *("-c", "1", "--force", "--scheduler_port", str(scheduler_port)),
        )

    with node("early") as early:  # found by the scheduler's announcement to the nodes' port
        early.expect(r"^discoronode: 1 processes ready", timeout=20)
        args = ("-i", "127.0.0.1", "-u", str(scheduler_port), "--dest_path", str(tmp_path))
        args += ("--discoronode_port", str(node_port))
        with PeerProcess(SCHEDULER, *args) as scheduler:
            scheduler.expect(SCHEDULER_READY, timeout=20)
            # found by its own announcement to the schedulers' port
            with node("late") as late:
                late.expect(r"^discoronode: 1 processes ready", timeout=20)
                deadline = time.monotonic() + 20  # polled with a deadline
                while True:
                    scheduler.write("")  # an empty line: status
                    line = scheduler.expect(r"^discoro: no computation; ", timeout=10).string
                    if "1 node(s), 2 server process(es)" in line:
                        break
                    assert time.monotonic() < deadline, f"not both nodes found: {line}"
                    time.sleep(0.2)
            scheduler.write("quit")
            scheduler.expect(r"^discoro: quit: stopping$")
            assert scheduler.wait(20) == 0


def test_scheduler_daemon_reads_no_stdin(
    cluster_secret: str, udp_port: int, tmp_path: Path
) -> None:
    args = ("-i", "127.0.0.1", "-u", str(udp_port), "--dest_path", str(tmp_path), "--daemon")
    with PeerProcess(SCHEDULER, *args, "--pulse_interval", "5") as scheduler:
        scheduler.expect(SCHEDULER_READY, timeout=20)
        scheduler.write("quit")  # not read
        assert scheduler.proc.stdin is not None
        scheduler.proc.stdin.close()
        scheduler.proc.send_signal(signal.SIGHUP)
        scheduler.expect(r"^discoro: SIGHUP: stopping$")
        assert scheduler.wait(20) == 0
        assert not any("quit: stopping" in line for line in scheduler.output)


ANNOUNCER = """
import sys
import discoro

udp_port, announce_port = int(sys.argv[1]), int(sys.argv[2])
kernel = discoro.AsynCoro(
    node="127.0.0.1", udp_port=udp_port, announce_port=announce_port, announce_interval=1,
    name="pinger",
)
print("LOCATION", kernel.location, flush=True)
sys.stdin.readline()
"""


def test_ping_interval_announces_periodically_to_the_announce_port(cluster_secret: str) -> None:
    """``--ping_interval`` / ``--scheduler_port`` / ``--discoronode_port`` become these
    network options: announcements go on to the other port at the fixed period (a plain
    process would stay quiet after its start burst)."""
    own, other = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    counter = Counter(other, cluster_secret)
    try:
        with PeerProcess(ANNOUNCER, str(own), str(other)) as announcer:
            announcer.expect(r"^LOCATION ", timeout=20)
            heard = counter.wait_for(len(ANNOUNCE_DELAYS) + 4, timeout=20)
        assert set(heard) == {"pinger"}
    finally:
        counter.close()
