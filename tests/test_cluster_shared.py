"""Two clients on a shared scheduler program, and a client with the wrong secret."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import run_client
from procs import PeerProcess

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro.cluster.local import LocalCluster

SCHEDULER = """
import sys
from discoro.cli.scheduler import main
sys.exit(main(sys.argv[1:]))
"""

FIRST = """
import threading


def job(client, coro=None):
    global SHARED
    SHARED = "first"
    with open("first.txt", "w") as f:
        f.write("first")
    yield coro.sleep(0)
    client.send("set")


def client(coro=None):
    threading.Thread(target=lambda: (sys.stdin.readline(), coro.send("close")),
                     daemon=True).start()
    comp = yield from start([job], coro)
    rcs = yield comp.run_procs(job, coro)
    for _ in rcs:
        yield coro.receive(timeout=10)
    out("FIRST READY", len(rcs))
    assert (yield coro.receive(timeout=30)) == "close"
    yield comp.close()
    out("FIRST CLOSED", time.time())
    return "first"
"""

SECOND = """
def probe(client, coro=None):
    yield coro.sleep(0)
    client.send(("probe", "SHARED" in globals(), sorted(os.listdir("."))))


def client(coro=None):
    out("SECOND SUBMITTING")
    comp = yield from start([probe], coro)
    out("SECOND SCHEDULED", time.time())
    rcs = yield comp.run_procs(probe, coro)
    for _ in rcs:
        out("PROBE", (yield coro.receive(timeout=10)))
    yield comp.close()
    return "second"
"""

WRONG = """
def job(coro=None):
    yield coro.sleep(0)


def client(coro=None):
    started = time.monotonic()
    comp = yield from start([job], coro, timeout=2)
    out("ELAPSED", time.monotonic() - started)
    return "wrong"
"""


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


@pytest.fixture
def scheduler(cluster: LocalCluster, udp_port: int) -> Iterator[PeerProcess]:
    args = ["scheduler", "-i", "127.0.0.1", "-u", str(udp_port)]
    with PeerProcess(SCHEDULER, *args) as program:
        program.expect(r"^discoro: scheduler ready at ", timeout=20)
        yield program


def test_second_client_waits_for_the_first(scheduler: PeerProcess, udp_port: int) -> None:
    with run_client(FIRST, udp_port, private=False) as first:
        first.expect(r"^SCHEDULE 0$", timeout=20)
        first.expect(r"^FIRST READY 2$")
        with run_client(SECOND, udp_port, private=False) as second:
            second.expect(r"^SECOND SUBMITTING$")
            # queued behind the first: not scheduled while the first is current
            with pytest.raises(AssertionError):
                second.expect(r"^SECOND SCHEDULED", timeout=1.5)
            first.write("close")
            closed = float(first.expect(r"^FIRST CLOSED (\S+)$")[1])
            first.expect(r"^DONE first$")
            second.expect(r"^SCHEDULE 0$", timeout=20)
            scheduled = float(second.expect(r"^SECOND SCHEDULED (\S+)$")[1])
            assert scheduled >= closed
            for _ in range(2):
                assert second.expect(r"^PROBE (.*)$")[1] == "('probe', False, [])"
            second.expect(r"^DONE second$")
            assert first.wait(10) == 0 and second.wait(10) == 0


def test_wrong_secret_cannot_schedule(scheduler: PeerProcess, udp_port: int) -> None:
    with run_client(WRONG, udp_port, private=False, env={"DISCORO_SECRET": "wrong"}) as client:
        client.expect(r"^SCHEDULE -1$", timeout=15)
        assert float(client.expect(r"^ELAPSED (\S+)$")[1]) < 5
        client.expect(r"^DONE wrong$")
        assert client.wait(10) == 0
