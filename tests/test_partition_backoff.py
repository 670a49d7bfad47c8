"""The pieces of rejoining after a partition, without a network: the backoff schedule, the
re-announcer, the scheduler's list of processes to re-probe, and a job ended because its
scheduler was lost (`ServerJob.end_lost`)."""

from __future__ import annotations

import asyncio
import itertools
import queue
from typing import Any

from discoro import Coro, MonitorException, SchedulerLost
from discoro.cluster import protocol as p
from discoro.cluster.scheduler_state import PeerLost, ProcFound, ProcState, SchedulerState
from discoro.cluster.server_job import ServerJob
from discoro.net.location import Location
from discoro.net.reannounce import REANNOUNCE_FIRST, REANNOUNCE_MAX, Reannouncer, backoff

TIMEOUT = 10


def test_backoff_doubles_up_to_its_limit_and_stays_there() -> None:
    assert list(itertools.islice(backoff(1, 30), 8)) == [1, 2, 4, 8, 16, 30, 30, 30]
    assert (REANNOUNCE_FIRST, REANNOUNCE_MAX) == (1.0, 30.0)


def test_reannouncer_backs_off_and_restart_starts_over() -> None:
    async def scenario() -> tuple[list[float], int, list[float], int]:
        pauses: list[float] = []
        sent = 0
        enough = asyncio.Event()

        async def sleep(delay: float) -> None:
            pauses.append(delay)
            if len(pauses) >= 7:
                enough.set()
                await asyncio.Event().wait()  # parked until cancelled
            await asyncio.sleep(0)

        def send() -> None:
            nonlocal sent
            sent += 1

        announcer = Reannouncer(asyncio.get_running_loop(), send, sleep=sleep)
        announcer.restart()
        await asyncio.wait_for(enough.wait(), TIMEOUT)
        first, first_sent = list(pauses), sent
        pauses.clear()
        enough.clear()
        announcer.restart()  # something changed: from 1 s again
        await asyncio.wait_for(enough.wait(), TIMEOUT)
        announcer.stop()
        assert not announcer.running
        return first, first_sent, list(pauses), sent

    first, first_sent, again, sent = asyncio.run(scenario())
    assert first == [1, 2, 4, 8, 16, 30, 30] == again
    assert first_sent == 6 and sent == 12  # one datagram after each pause that ended


def loc(port: int) -> Location:
    return Location("10.0.0.2", port)


def test_lost_processes_are_re_probed_until_found_again() -> None:
    state = SchedulerState(me="scheduler", clock=lambda: 0.0)
    state.handle(ProcFound(loc(1), "server-1"))
    state.handle(ProcFound(loc(2), "server-2"))
    assert state.lost_locations() == []
    state.handle(PeerLost(loc(1)))
    assert state.lost_locations() == [loc(1)]
    assert state.procs[loc(1)].state is ProcState.DISCONNECTED
    # found again (the re-probe reached it): it is a new process for the scheduler
    actions = state.handle(ProcFound(loc(1), "server-1"))
    assert state.lost_locations() == []
    assert [type(action.message) for action in actions] == [p.Watch]


def sleeper(coro: Any = None) -> Any:
    yield coro.sleep(60)


def quick(coro: Any = None) -> Any:
    yield coro.sleep(0)
    return "done"


def keeper(box: queue.Queue[Any], coro: Any = None) -> Any:
    while True:
        box.put((yield coro.receive()))


def failed(job: Any, exc_info: Any, monitors: Any) -> None:
    raise AssertionError(f"on_error called for {job}: {exc_info}")


def test_a_job_ended_for_a_lost_scheduler_fails_with_scheduler_lost() -> None:
    reachable_box: queue.Queue[Any] = queue.Queue()
    cut_off_box: queue.Queue[Any] = queue.Queue()
    reachable, cut_off = Coro(keeper, reachable_box), Coro(keeper, cut_off_box)
    job = ServerJob(None, failed, None, sleeper)
    job.notify(cut_off)
    job.notify(reachable)
    error = SchedulerLost("the scheduler at 10.0.0.3:1 went offline")
    job.end_lost(error, lambda monitor: monitor is reachable)
    message = reachable_box.get(timeout=TIMEOUT)
    assert isinstance(message, MonitorException)
    assert message.args[0] is job
    assert message.args[1][0] is SchedulerLost and message.args[1][1] is error
    # the cut-off monitor is forgotten: it hears of the job from the scheduler, not twice
    cut_off.send("after")
    assert cut_off_box.get(timeout=TIMEOUT) == "after"
    for coro in (reachable, cut_off):
        coro.terminate()


def test_a_job_that_finished_first_keeps_its_normal_end() -> None:
    box: queue.Queue[Any] = queue.Queue()
    monitor = Coro(keeper, box)
    job = ServerJob(None, failed, None, quick)
    job.notify(monitor)
    assert job.value(TIMEOUT) == "done"
    job.end_lost(SchedulerLost("gone"), lambda _: True)
    message = box.get(timeout=TIMEOUT)
    assert message.args[1] == (StopIteration, "done")
    monitor.terminate()
