"""The runs a scheduler places in one loop turn go to each server as one `Runs` message,
and the ends of the jobs that end in one server loop turn come back as one `JobsDone`
(issue 9): every run exactly once, to its own server, in order; a batch goes out at the end
of the turn or before anything else is sent the same way. On a real node, runs issued by
several coroutines at once are batched and each still gets its own reply and end, once.
"""

from __future__ import annotations

import asyncio

import pytest

from discoro.cluster import protocol as p
from discoro.cluster.run_batch import RunBatcher

pytestmark = pytest.mark.timeout(60)


class Target:
    """Stands for a server coroutine: records what it is sent."""

    def __init__(self) -> None:
        self.got: list[object] = []

    def send(self, message: object) -> int:
        self.got.append(message)
        return 0


def run(rid: int) -> p.Run:
    return p.Run("c1", rid, "f", "f", b"", None)


def test_a_turns_runs_go_to_each_server_as_one_message_in_order() -> None:
    loop = asyncio.new_event_loop()
    try:
        batcher = RunBatcher(loop)
        a, b = Target(), Target()
        for rid, to in ((1, a), (2, b), (3, a), (4, a)):
            batcher.add(to, run(rid))  # type: ignore[arg-type]
        assert a.got == [] and b.got == []  # not before the turn ends
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    assert a.got == [p.Runs([run(1), run(3), run(4)])]
    assert b.got == [run(2)]  # a single run goes as itself
    assert (batcher.batches, batcher.batched) == (1, 3)


def test_waiting_runs_go_before_anything_sent_after_them() -> None:
    loop = asyncio.new_event_loop()
    try:
        batcher = RunBatcher(loop)
        a = Target()
        batcher.add(a, run(1))  # type: ignore[arg-type]
        batcher.add(a, run(2))  # type: ignore[arg-type]
        batcher.flush()  # the scheduler is about to send something else
        a.send(p.Close("c1"))
        batcher.add(a, run(3))  # type: ignore[arg-type]
        loop.run_until_complete(asyncio.sleep(0))
        loop.run_until_complete(asyncio.sleep(0))  # the first turn's flush finds nothing
    finally:
        loop.close()
    assert a.got == [p.Runs([run(1), run(2)]), p.Close("c1"), run(3)]  # each once, in order


PROGRAM = """
from discoro.cluster import run_batch

BATCHES = []
_flush = run_batch.RunBatcher.flush


def flush(self):
    before = self.batches
    _flush(self)
    if self.batches > before:
        BATCHES.append(self.batches - before)


run_batch.RunBatcher.flush = flush

from discoro.cluster import protocol as proto, scheduler as sched

JOINED = []  # sizes of the JobsDone messages the scheduler got
_handle = sched.Scheduler._handle


def handle(self, message):
    if type(message) is proto.JobsDone:
        JOINED.append(len(message.dones))
    _handle(self, message)


sched.Scheduler._handle = handle

RUNNERS, EACH = 8, 10


def trivial(i, coro=None):
    return i
    yield


def runner(n, client, coro=None):
    got = []
    for i in range(EACH):
        job = yield comp_box[0].run(trivial, n * 100 + i)
        got.append(job)
    client.send(("RAN", n, got))


comp_box = []


def client(coro=None):
    comp = yield from start([trivial], coro, nprocs=1)
    comp_box.append(comp)
    for n in range(RUNNERS):
        Coro(runner, n, coro)
    jobs = []
    for _ in range(RUNNERS):
        msg = yield coro.receive(timeout=60)
        jobs.extend(msg[2])
    ids = {job._id for job in jobs if isinstance(job, Coro)}
    out("RUNS", len(jobs), len(ids), len(BATCHES) > 0)
    out("JOINED", sum(JOINED) == len(jobs), max(JOINED) > 1)  # each end once, some together
    yield comp.close()
    return "ok"
"""


@pytest.mark.timeout(120)
def test_runs_issued_together_are_batched_and_each_answered_once(
    cluster_secret: str, udp_port: int
) -> None:
    import discoro
    from cluster_programs import run_client

    with discoro.local_cluster(procs=1, udp_port=udp_port, secret=cluster_secret):
        with run_client(PROGRAM, udp_port, nprocs=1) as client:
            client.expect(r"^RUNS 80 80 True$", timeout=60)
            client.expect(r"^JOINED True True$", timeout=10)
            client.expect(r"^DONE ok$", timeout=60)
            assert client.wait(20) == 0
        output = client.output
        ends = [line for line in output if line.startswith("MONITOR ")]
        assert len(ends) == 80, output  # every job's end, once
        assert len(set(ends)) == 80, output
