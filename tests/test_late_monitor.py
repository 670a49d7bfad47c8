"""``monitor()`` on a remote coroutine that has already ended gets its `MonitorException` at
once (issue 11; examples/shared_scheduler.py monitors right after ``run``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import run_client

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro.cluster.local import LocalCluster

LATE_MONITOR = """
def fails():
    return 1 / 0


def job(n, coro=None):
    if n < 0:
        fails()
    yield coro.sleep(0)
    return n * 10


def ended(coro, rc):
    # the status coroutine sees every job's end: wait for this one's
    while True:
        msg = yield coro.receive(timeout=20)
        if isinstance(msg, MonitorException) and str(msg.args[0]) == str(rc):
            return


def client(coro=None):
    comp = yield from start([job], coro)
    LISTENERS.append(coro)
    for n in (-1, 4):
        rc = yield comp.run(job, n)
        yield from ended(coro, rc)
        LISTENERS.clear()
        out("MONITOR", n, (yield coro.monitor(rc)))
        msg = yield coro.receive(timeout=10)
        kind, value = msg.args[1]
        out("LATE", n, str(msg.args[0]) == str(rc), kind.__name__, repr(value))
        LISTENERS.append(coro)
    LISTENERS.clear()
    out("AFTER", (yield coro.receive(timeout=2)))  # told once, nothing more
    yield comp.close()
    return "ok"
"""


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=1, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


def test_monitor_of_an_ended_remote_coroutine_delivers_its_end_at_once(
    cluster: LocalCluster, udp_port: int
) -> None:
    with run_client(LATE_MONITOR, udp_port, nprocs=1) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        client.expect(r"^MONITOR -1 0$", timeout=20)
        client.expect(r"^LATE -1 True ZeroDivisionError ZeroDivisionError\('division by zero'\)")
        client.expect(r"^MONITOR 4 0$")
        client.expect(r"^LATE 4 True StopIteration 40$")
        client.expect(r"^AFTER None$")
        client.expect(r"^DONE ok$")
        assert client.wait(10) == 0
