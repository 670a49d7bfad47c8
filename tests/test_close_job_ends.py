"""``close()``'s last wait, without a network: until every job the client's ledger holds open
has had its end reach the (local) status coroutine, bounded by a timeout that logs the jobs
whose end did not come (`discoro.cluster.replies`). The real race, a terminated job's end
arriving after the scheduler's answer, is tested against a real node in test_later_close.py."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

from discoro import Computation, Coro
from discoro.cluster.job_ledger import JobLedger
from discoro.net.location import Location

if TYPE_CHECKING:
    from discoro.core.coro import Coro as CoroType

pytestmark = pytest.mark.timeout(30)

WHERE = Location("10.0.0.1", 1)


class Job:
    def __init__(self, ident: int) -> None:
        self._id = ident

    def __str__(self) -> str:
        return f"job/{self._id}@{WHERE}"


def job(coro: Any = None) -> Any:
    yield coro.sleep(0)


def listener(coro: Any = None) -> Any:
    coro.set_daemon()
    while True:
        yield coro.receive()


def computation_with_open_jobs(*idents: int) -> tuple[Computation, CoroType]:
    status = Coro(listener)
    comp = Computation([job], status_coro=status)
    ledger: JobLedger[Any] = JobLedger()
    for ident in idents:
        assert ledger.started(Job(ident), WHERE, 1) is False
    comp._ledger = ledger
    return comp, status


def test_the_wait_ends_when_the_last_open_job_has_ended(caplog: pytest.LogCaptureFixture) -> None:
    comp, status = computation_with_open_jobs(1, 2)

    async def ends_arrive(coro: Any = None) -> None:
        await coro.sleep(0)
        comp._end_seen(WHERE, 1, status)
        comp._end_seen(WHERE, 2, Coro(listener))  # another monitor's notice: not counted
        await coro.sleep(0)
        comp._end_seen(WHERE, 2, status)

    async def closing(coro: Any = None) -> bool:
        Coro(ends_arrive)
        await comp._await_job_ends(600)  # only the ends can make this return in time
        return comp._ledger is not None and not comp._ledger.open

    with caplog.at_level(logging.WARNING, logger="discoro"):
        assert Coro(closing).value(20) is True
    assert not [r for r in caplog.records if "no end heard" in r.getMessage()]


def test_the_wait_gives_up_after_its_timeout_and_names_the_missing_jobs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    comp, status = computation_with_open_jobs(1, 2)

    async def closing(coro: Any = None) -> str:
        comp._end_seen(WHERE, 1, status)
        await comp._await_job_ends(0.5)
        return "returned"

    with caplog.at_level(logging.WARNING, logger="discoro"):
        assert Coro(closing).value(20) == "returned"
    (line,) = [r.getMessage() for r in caplog.records if "no end heard" in r.getMessage()]
    assert "job/2@10.0.0.1:1" in line and "job/1@" not in line, line


def test_no_wait_without_a_local_status_coroutine() -> None:
    comp = Computation([job])  # no status coroutine: no ledger, nothing to wait for

    async def closing(coro: Any = None) -> str:
        await comp._await_job_ends(600)
        return "returned"

    assert comp._ledger is None
    assert Coro(closing).value(20) == "returned"
