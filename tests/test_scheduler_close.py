"""`Scheduler.close()` (later versions, used with ``yield``): the current computation is
closed at once, its running jobs terminated, and its status coroutine hears of it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import run_client

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro.cluster.local import LocalCluster

CLOSING = """
def long_job(coro=None):
    yield coro.sleep(120)


def client(coro=None):
    LISTENERS.append(coro)
    comp = yield from start([long_job], coro)
    job = yield comp.run(long_job)
    out("RUNNING", job)
    scheduler = Scheduler()  # the one main() made: a singleton
    started = time.monotonic()
    out("CLOSED", (yield scheduler.close()))
    ended = closed = False
    while not (ended and closed):
        msg = yield coro.receive(timeout=20)
        if msg is None:
            break
        if isinstance(msg, MonitorException):
            ended = ended or msg.args[0] == job
        elif msg.status == Scheduler.ComputationClosed:
            closed = True
    out("ENDED", ended, closed, time.monotonic() - started < 20)
    out("AGAIN", (yield scheduler.close()))  # nothing current: nothing to do
    return "ok"
"""


@pytest.fixture
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=1, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


@pytest.mark.timeout(90)
def test_scheduler_close_ends_the_current_computation(cluster: LocalCluster, udp_port: int) -> None:
    with run_client(CLOSING, udp_port, nprocs=1) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        client.expect(r"^RUNNING ", timeout=20)
        client.expect(r"^CLOSED 0$", timeout=30)
        client.expect(r"^ENDED True True True$", timeout=30)
        client.expect(r"^AGAIN 0$")
        client.expect(r"^DONE ok$")
        assert client.wait(10) == 0
