"""A shared scheduler killed (SIGKILL) in the middle of a computation: its jobs are not
taken for finished. Each reaches the client's status coroutine as a `MonitorException`
with `SchedulerLost`, and the client's later calls fail at once, saying why."""

from __future__ import annotations

import re
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

CLIENT = """
def long_job(coro=None):
    yield coro.sleep(60)
    return "finished"


def client(coro=None):
    LISTENERS.append(coro)
    comp = yield from start([long_job], coro)
    rcs = []
    for _ in range(4):
        rcs.append((yield comp.run(long_job)))
    out("RUNNING", sum(isinstance(rc, Coro) for rc in rcs))
    ended = 0
    while ended < 4:
        msg = yield coro.receive(timeout=30)
        if msg is None:
            out("TIMED OUT")
            return "incomplete"
        if isinstance(msg, MonitorException) and msg.args[0] in rcs:
            ended += 1
    # the client notices the lost scheduler itself (its link dropped)
    deadline = time.monotonic() + 20
    while comp.last_error is None and time.monotonic() < deadline:
        yield coro.sleep(0.05)
    out("NOTICED", comp.last_error)
    rc = yield comp.run(long_job)
    out("RUN AFTER", rc, comp.last_error)
    procs = yield comp.run_procs(long_job)
    out("RUN_PROCS AFTER", procs, comp.last_error)
    out("SCHEDULE AGAIN", (yield comp.schedule()), comp.last_error)
    out("CLOSE", (yield comp.close()))
    return "ok"
"""


@pytest.fixture
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


@pytest.fixture
def scheduler(cluster: LocalCluster, udp_port: int) -> Iterator[PeerProcess]:
    args = ["scheduler", "-i", "127.0.0.1", "-u", str(udp_port)]
    with PeerProcess(SCHEDULER, *args) as program:
        program.expect(r"^discoro: scheduler ready at ", timeout=20)
        yield program


@pytest.mark.timeout(90)
def test_killed_scheduler_fails_the_jobs(scheduler: PeerProcess, udp_port: int) -> None:
    with run_client(CLIENT, udp_port, private=False) as client:
        client.expect(r"^SCHEDULE 0$", timeout=30)
        client.expect(r"^RUNNING 4$", timeout=20)
        scheduler.kill()  # SIGKILL
        monitors = [
            client.expect(r"^MONITOR (\S+) (\S+) (.*)$", timeout=30).groups() for _ in range(4)
        ]
        assert len({coro for coro, _, _ in monitors}) == 4
        for _, kind, text in monitors:
            assert kind == "SchedulerLost", monitors
            assert "scheduler" in text and "went offline" in text, text
        reason = client.expect(r"^NOTICED (.*)$", timeout=30)[1]
        assert "scheduler" in reason and "went offline" in reason, reason
        # later calls fail at once with that reason, not after a timeout ("no reply ...")
        assert client.expect(r"^RUN AFTER (.*)$", timeout=5)[1] == f"None {reason}"
        assert client.expect(r"^RUN_PROCS AFTER (.*)$", timeout=5)[1] == f"[] {reason}"
        assert client.expect(r"^SCHEDULE AGAIN (.*)$", timeout=5)[1] == f"-1 {reason}"
        client.expect(r"^CLOSE 0$")
        client.expect(r"^DONE ok$")
        assert client.wait(10) == 0
        # no job was reported as finished normally
        assert not any(re.match(r"^MONITOR \S+ StopIteration", line) for line in client.output)
