"""The client's side of exactly-once, without a network: frame tags and fences
(`discoro.net.fencing`) and the job ledger (`discoro.cluster.job_ledger`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from discoro.cluster.job_ledger import JobLedger
from discoro.net.fencing import TAG, Fences
from discoro.net.location import Location
from discoro.wire.messages import Message

if TYPE_CHECKING:
    import pytest

A, B = Location("10.0.0.1", 1), Location("10.0.0.2", 1)


class Job:
    def __init__(self, ident: int) -> None:
        self._id = ident


def test_frames_carry_the_incarnation_they_were_posted_under() -> None:
    fences = Fences()
    plain = Message("send", 0, {"c": 1})
    assert fences.tagged(plain) is plain  # no incarnation: untouched
    fences.own = 7
    tagged = fences.tagged(plain)
    assert tagged.fields == {"c": 1, TAG: 7} and plain.fields == {"c": 1}  # not mutated
    fences.own = 8
    assert fences.tagged(tagged) is tagged  # tagged once, when posted


def test_a_fence_drops_that_incarnation_and_older_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fences = Fences()
    old, new = Message("send", 0, {"c": 1, TAG: 3}), Message("send", 0, {"c": 1, TAG: 4})
    untagged = Message("notify_exit", 0, {"m": 1})
    assert fences.admits(A, old)  # no fence yet
    fences.fence(A, 3)
    fences.fence(A, 2)  # lower: the fence stays at 3
    with caplog.at_level(logging.DEBUG, logger="discoro"):
        assert not fences.admits(A, old)
        assert not fences.admits(A, untagged)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "incarnation 3 was written off" in warnings[0].getMessage()
    assert fences.admits(A, new)  # a later incarnation: it rejoined
    assert fences.admits(B, old)  # another process
    assert fences.admits(A, Message("reply", 5, {"r": 0, TAG: 3}))  # replies pass
    fences.exempt.add(9)
    assert fences.admits(A, Message("send", 0, {"c": 9, TAG: 3}))  # fences for itself


def test_whichever_comes_first_wins_and_each_job_is_reported_once() -> None:
    ledger = JobLedger()
    finished, running, late = Job(1), Job(2), Job(3)
    other_process = Job(2)  # ids are per process
    assert not ledger.started(finished, A, 5)
    assert not ledger.started(running, A, 5)
    assert not ledger.started(other_process, B, 1)
    ledger.ended(A, 1)  # its server's report came first
    unknown = Job(4)  # the scheduler knew it; its creation never reached the client
    lost = ledger.written_off(A, 5, "silent", [finished, running, unknown])
    assert lost == [running, unknown]
    assert ledger.written_off(A, 5, "again", [running]) == []  # never twice
    assert ledger.started(late, A, 5)  # created by the fenced incarnation: lost at once
    assert not ledger.started(late, A, 5)
    assert not ledger.started(Job(5), A, 6)  # the new incarnation is heard
    assert ledger.open.keys() == {(B, 2), (A, 5)}


def test_ended_jobs_are_remembered_for_a_bounded_window() -> None:
    ledger = JobLedger()
    for ident in range(5000):
        ledger.ended(A, ident)
    assert len(ledger.ended_ids) == 4096
