"""`Scheduler.terminate_coros` with a private scheduler in this test process and a real local
node on 127.0.0.1. (In its own file: it starts this process's networking, which the
single-process tests that sort before it must not see.) The scheduler's request coroutine
ends with the module: a ``discoro_scheduler`` left registered in this process would answer
the discovery of later tests on the session's port (``discoro status`` without
``--scheduler`` found it instead of its own scheduler)."""

from __future__ import annotations

import queue
import time
from typing import TYPE_CHECKING, Any

import pytest

from discoro import AsynCoro, Computation, Coro, MonitorException, Scheduler
from discoro.cluster.constants import SCHEDULER_NAME
from discoro.cluster.local import LocalCluster, local_cluster
from test_cluster_status import poll

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(120)  # generous: a loaded machine is slow, not wrong


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as running:
        yield running


@pytest.fixture(scope="module")
def scheduler(cluster: LocalCluster) -> Iterator[Scheduler]:
    scheduler = Scheduler()
    yield scheduler
    scheduler.coro.terminate()  # no scheduler of this process answers anyone any more
    poll(lambda: scheduler.kernel.registered(SCHEDULER_NAME) is None)


def waiter(tag: str, count: int, coro: Any = None) -> Any:
    yield coro.receive()  # until told, or terminated
    return tag


def test_terminate_coros_ends_a_running_coroutine(
    cluster: LocalCluster, net_kernel: AsynCoro, scheduler: Scheduler
) -> None:
    messages: queue.Queue[Any] = queue.Queue()

    def status(coro: Any = None) -> Any:
        coro.set_daemon()
        while True:
            messages.put((yield coro.receive()))

    computation = Computation([waiter], status_coro=Coro(status))

    def start(coro: Any = None) -> Any:
        if (yield computation.schedule(net_kernel.location)) != 0:
            return None
        for _ in range(600):  # up to a minute for both processes to be set up
            if len((yield computation.procs())) >= 2:
                break
            yield coro.sleep(0.1)
        return (yield computation.run_procs(waiter, "x" * 200, 3))

    jobs = Coro(start).value(90)
    assert jobs and len(jobs) == 2
    names = [str(job) for job in jobs]

    def running() -> list[dict[str, Any]]:
        snapshot = scheduler.status_threadsafe()
        return [c for proc in snapshot["procs"] for c in proc["coros"] if c["coro"] in names]

    coros = poll(lambda: len(running()) == 2 and running())
    assert all(len(coro["args"]) <= 80 and "..." in coro["args"] for coro in coros)
    assert scheduler.terminate_coros([names[0], "nosuch/1@127.0.0.1:1"]) == [names[0]]
    deadline = time.monotonic() + 30
    while True:
        message = messages.get(timeout=max(0.1, deadline - time.monotonic()))
        if isinstance(message, MonitorException) and str(message.args[0]) == names[0]:
            break
    poll(lambda: [c["coro"] for c in running()] == [names[1]])
    totals = scheduler.status_threadsafe()["totals"]
    assert totals["running"] == 1 and totals["done"] >= 1
    jobs[1].send("done")

    def close(coro: Any = None) -> Any:
        return (yield computation.close())

    assert Coro(close).value(60) == 0
