"""``close(await_async=False)`` and the close-time statuses against a real node (later-
versions D4, D5), and D3's waiting rule for a run without a target: ``close()`` waits for
CPU jobs (never kills them) and terminates async ones unless ``await_async``; the status
coroutine hears ``ServerClosed``, ``NodeClosed`` and ``ComputationClosed`` before ``close()``
returns; at interpreter exit the close waits too, but terminates jobs after 5 pulse
intervals."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import run_client
from procs import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro.cluster.local import LocalCluster

pytestmark = pytest.mark.timeout(120)

JOBS = """
def sleeper(seconds, coro=None):
    yield coro.sleep(seconds)
    return "slept %s" % seconds
"""

CLOSE_WAITS = (
    JOBS
    + """
def client(coro=None):
    comp = Computation([sleeper], status_coro=Coro(status_proc))
    out("SCHEDULE", (yield comp.schedule()))
    rc = yield comp.run(sleeper, 2)  # right after schedule: waits for a ready server
    out("RUN", type(rc).__name__)
    ra = yield comp.run_async(sleeper, 60)
    out("ASYNC", type(ra).__name__)
    out("CLOSING")
    started = time.monotonic()
    yield comp.close()
    out("CLOSED", time.monotonic() - started > 1)
    return "ok"
"""
)

AWAIT_ASYNC = (
    JOBS
    + """
def client(coro=None):
    comp = yield from start([sleeper], coro)
    ra = yield comp.run_async(sleeper, 2)
    out("ASYNC", type(ra).__name__)
    yield comp.close(await_async=True)
    out("CLOSED")
    return "ok"
"""
)

AT_EXIT = (
    JOBS
    + """
def client(coro=None):
    comp = yield from start([sleeper], coro, pulse_interval=1)
    rc = yield comp.run(sleeper, float(os.environ["SLEEP"]))
    out("RUN", type(rc).__name__)
    return "ok"  # no close(): the interpreter's exit closes the computation
"""
)

VALUE_AT_CLOSE = (
    JOBS
    + """
def getter(comp, coro=None):
    out("GOT", (yield comp.run_result(sleeper, 2)))


def client(coro=None):
    comp = yield from start([sleeper], coro)
    LISTENERS.append(coro)
    Coro(getter, comp)
    while True:  # until the job runs
        msg = yield coro.receive(timeout=30)
        if getattr(msg, "status", None) == Scheduler.CoroCreated:
            break
    yield comp.close()  # waits for the job; its value still reaches run_result
    out("CLOSED")
    return "ok"
"""
)

ENDS_BEFORE_RETURN = (
    JOBS
    + """
def client(coro=None):
    comp = Computation([sleeper], status_coro=coro)  # this coroutine's own mailbox
    out("SCHEDULE", (yield comp.schedule()))
    long = yield comp.run_async(sleeper, 60)  # the close terminates it
    short = yield comp.run_async(sleeper, 0)  # ends by itself, around the close
    out("ASYNC", type(long).__name__, type(short).__name__)
    yield comp.close()
    ends = set()
    while True:  # only what is already here: no wait
        msg = yield coro.receive(timeout=0)
        if msg is None:
            break
        if isinstance(msg, MonitorException):
            ends.add(str(msg.args[0]))
    out("ENDS", sorted(ends) == sorted([str(long), str(short)]), sorted(ends))
    return "ok"
"""
)

ENDS_BEFORE_CLOSE_NOW_RETURNS = ENDS_BEFORE_RETURN.replace(
    "comp.run_async(sleeper, 60)",
    "comp.run(sleeper, 60)",  # a CPU job: close_now ends it too
).replace("yield comp.close()", "yield comp.close_now()")
assert ENDS_BEFORE_CLOSE_NOW_RETURNS.count("close_now") == 1

NO_SERVER = """
def nap(coro=None):
    yield coro.sleep(1)


def closer(comp, coro=None):
    yield coro.sleep(4)  # past the computation's timeout: the run says why it waits
    out("CLOSING")
    yield comp.close()


def client(coro=None):
    comp = Computation([], timeout=2)
    out("SCHEDULE", (yield comp.schedule()))
    Coro(closer, comp)
    out("RUN", (yield comp.run(nap)), comp.last_error)
    return "ok"
"""


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


def test_close_waits_for_cpu_jobs_terminates_async_ones_and_reports_before_returning(
    cluster: LocalCluster, udp_port: int
) -> None:
    procs = [str(location) for location in cluster.procs.values()]
    with run_client(CLOSE_WAITS, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=30)
        client.expect(r"^RUN Coro$", timeout=30)
        client.expect(r"^ASYNC Coro$")
        client.expect(r"^CLOSING$")
        client.expect(r"close waits for 1 job\(s\) to end: .*sleeper")
        # the CPU job ends normally; then the async one is terminated by the close
        client.expect(r"^MONITOR \S+ StopIteration 'slept 2'$", timeout=30)
        closed = [client.expect(r"^STATUS (?:Proc|Server)Closed (\S+)$")[1] for _ in procs]
        assert sorted(closed) == sorted(procs)
        client.expect(r"^STATUS NodeClosed 127.0.0.1$")
        client.expect(r"^STATUS ComputationClosed \S+$")
        client.expect(r"^CLOSED True$")
        client.expect(r"^DONE ok$", timeout=30)
        assert client.wait(30) == 0
    text = "\n".join(client.output)
    assert text.count("STATUS ProcDiscovered") == 2 and "STATUS NodeDiscovered 127.0.0.1" in text


@pytest.mark.parametrize(
    "program",
    [ENDS_BEFORE_RETURN, ENDS_BEFORE_CLOSE_NOW_RETURNS],
    ids=["close", "close_now"],
)
def test_every_jobs_end_is_delivered_before_close_returns(
    cluster: LocalCluster, udp_port: int, program: str
) -> None:
    # the servers report the ends (also of jobs the close terminates) on their own links,
    # not the scheduler's: close() and close_now() wait until the status coroutine's
    # mailbox has them all
    with run_client(program, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=30)
        client.expect(r"^ASYNC Coro Coro$", timeout=30)
        ends = client.expect(r"^ENDS (\S+) .*$", timeout=30)
        assert ends[1] == "True", client.output
        client.expect(r"^DONE ok$", timeout=30)
        assert client.wait(30) == 0


def test_close_with_await_async_waits_for_async_jobs(cluster: LocalCluster, udp_port: int) -> None:
    with run_client(AWAIT_ASYNC, udp_port) as client:
        client.expect(r"^ASYNC Coro$", timeout=30)
        client.expect(r"^MONITOR \S+ StopIteration 'slept 2'$", timeout=30)
        client.expect(r"^STATUS ComputationClosed \S+$")
        client.expect(r"^CLOSED$")
        client.expect(r"^DONE ok$", timeout=30)
        assert client.wait(30) == 0


def test_a_run_result_running_at_close_gets_its_value(cluster: LocalCluster, udp_port: int) -> None:
    with run_client(VALUE_AT_CLOSE, udp_port) as client:
        client.expect(r"^GOT slept 2$", timeout=30)
        client.expect(r"^CLOSED$", timeout=30)
        client.expect(r"^DONE ok$", timeout=30)
        assert client.wait(30) == 0


def test_exit_waits_for_a_cpu_job_that_ends(cluster: LocalCluster, udp_port: int) -> None:
    with run_client(AT_EXIT, udp_port, env={"SLEEP": "2"}) as client:
        client.expect(r"^RUN Coro$", timeout=30)
        client.expect(r"^DONE ok$", timeout=30)
        client.expect(r"^MONITOR \S+ StopIteration 'slept 2.0'$", timeout=30)
        client.expect(r"^STATUS ComputationClosed \S+$")
        assert client.wait(30) == 0
    assert not any("terminating" in line for line in client.output)


def test_exit_terminates_a_job_after_five_pulse_intervals(
    cluster: LocalCluster, udp_port: int
) -> None:
    with run_client(AT_EXIT, udp_port, env={"SLEEP": "600"}) as client:
        client.expect(r"^RUN Coro$", timeout=30)
        client.expect(r"^DONE ok$", timeout=30)
        client.expect(r"jobs still running after 5 s; terminating them", timeout=30)
        client.expect(r"^STATUS ComputationClosed \S+$", timeout=30)
        assert client.wait(30) == 0


def test_a_run_without_target_waits_until_the_computation_closes(cluster_secret: str) -> None:
    lonely_port = free_port(socket.SOCK_DGRAM)  # no node listens there
    with run_client(NO_SERVER, lonely_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=30)
        client.expect(r"run of nap still waits: no node: .* \(waited 2 s\)$", timeout=30)
        client.expect(r"^CLOSING$", timeout=30)
        client.expect(r"^RUN None the computation is closing$", timeout=30)
        client.expect(r"^DONE ok$", timeout=30)
        assert client.wait(30) == 0
