"""Programs of the later versions' kind (later-versions §8), written in our own words, run
against a real node with two server processes; each test checks what such a program prints
when it works. Also: a 2015-style program and a later-style program one after the other on
the same cluster.

Each program starts its own private ``Scheduler()`` and builds its `Computation` with the
components positionally and everything else by keyword, as the later examples do.
"""

from __future__ import annotations

import re
import textwrap
from typing import TYPE_CHECKING

import pytest

import discoro
from procs import PeerProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro.cluster.local import LocalCluster

pytestmark = pytest.mark.timeout(180)

HEAD = """
import sys
import discoro as asyncoro
from discoro import *

PORT = int(sys.argv[1])
"""

# discoro_client1 kind: run_results with argument tuples, results printed in input order
RESULTS_IN_ORDER = """
def compute(i, n, coro=None):
    import time
    yield coro.sleep(n)
    return (i, str(coro.location), time.asctime())


def client_proc(njobs, coro=None):
    computation = Computation([compute])
    if (yield computation.schedule()):
        raise Exception("schedule failed")
    args = [(i, 0.1 * (njobs - i)) for i in range(njobs)]
    results = yield computation.run_results(compute, args)
    for i, where, when in results:
        print("    result for %d from %s: %s" % (i, where, when), flush=True)
    yield computation.close()


Scheduler(node="127.0.0.1", udp_port=PORT)
Coro(client_proc, 10)
"""

# discoro_client2 kind: run right after schedule (waits for a server), the httpd, the removed
# timeout keyword of the example, close() that waits for the jobs
RUN_THROTTLE_HTTPD = """
import discoro.httpd


def compute(i, coro=None):
    yield coro.sleep(0.5)
    return i


def client_proc(njobs, coro=None):
    computation = Computation([compute], pulse_interval=asyncoro.MinPulseInterval, timeout=5)
    http_server = discoro.httpd.HTTPServer(computation, port=int(sys.argv[2]), poll_sec=1)
    if (yield computation.schedule()):
        raise Exception("schedule failed")
    for i in range(njobs):
        rcoro = yield computation.run(compute, i)
        if rcoro:
            print("  job %d processed by %s" % (i, rcoro.location), flush=True)
    yield computation.close()
    http_server.shutdown(wait=False)
    print("closed", flush=True)


Scheduler(node="127.0.0.1", udp_port=PORT)
Coro(client_proc, 10)
"""

# discoro_client3 kind: a shipped user class, jobs that talk to the client, close() waiting
TALKING_JOBS = """
import math


class C:
    def __init__(self, i, n):
        self.i = i
        self.n = n


def compute(client, coro=None):
    obj = yield coro.receive()
    print("process at %s received: %s" % (coro.location, obj.n))
    yield coro.sleep(0.2)
    client.send("%d: %d: %.2f" % (obj.i, obj.n, math.sqrt(obj.n)))


def client_proc(njobs, coro=None):
    computation = Computation([compute, C])
    if (yield computation.schedule()):
        raise Exception("schedule failed")
    for i in range(njobs):
        rcoro = yield computation.run(compute, coro)
        if isinstance(rcoro, Coro):
            n = 10 * i + 1
            print("  request %d: %d" % (i, n), flush=True)
            rcoro.send(C(i, n))
    for k in range(njobs):
        reply = yield coro.receive()
        print("    result for job %d: %s" % (k, reply), flush=True)
    yield computation.close()


Scheduler(node="127.0.0.1", udp_port=PORT)
Coro(client_proc, 6)
"""

# discoro_client7 kind: status_coro set after construction, run_at a server as soon as it is
# initialized and again each time one of its jobs ends
RUN_AT_ON_STATUS = """
def rcoro_proc(n, coro=None):
    yield coro.sleep(0.1 * n)
    return n


def status_proc(computation, njobs, coro=None):
    started = done = 0
    while done < njobs:
        msg = yield coro.receive()
        if isinstance(msg, MonitorException):
            rcoro = msg.args[0]
            if msg.args[1][0] == StopIteration:
                print("      rcoro_proc at %s finished with %s" % (rcoro.location, msg.args[1][1]),
                      flush=True)
            done += 1
            if started < njobs:
                started += 1
                yield computation.run_at(rcoro.location, rcoro_proc, started)
        elif isinstance(msg, DiscoroStatus) and msg.status == Scheduler.ServerInitialized:
            if started < njobs:
                started += 1
                rcoro = yield computation.run_at(msg.info, rcoro_proc, started)
                if isinstance(rcoro, Coro):
                    print("  rcoro_proc started at %s with %s" % (rcoro.location, started),
                          flush=True)
    yield computation.close()
    print("all done", flush=True)


def client_proc(computation, njobs, coro=None):
    computation.status_coro = Coro(status_proc, computation, njobs)
    if (yield computation.schedule()):
        raise Exception("schedule failed")


computation = Computation([rcoro_proc])
Scheduler(node="127.0.0.1", udp_port=PORT)
Coro(client_proc, computation, 8)
"""

# discoro_httpd1/httpd2 kind: the httpd relays the user's status coroutine, async jobs,
# close(await_async=True) waits for them; close() without it terminates them
ASYNC_JOBS_HTTPD = """
import discoro.httpd


def rcoro_proc(seconds, coro=None):
    print("rcoro %s started" % coro)
    yield coro.sleep(seconds)
    return seconds


def status_proc(coro=None):
    coro.set_daemon()
    while True:
        msg = yield coro.receive()
        if isinstance(msg, MonitorException):
            kind = "done" if msg.args[1][0] == StopIteration else "failed"
            print("    rcoro %s %s" % (msg.args[0], kind), flush=True)
        elif isinstance(msg, DiscoroStatus) and msg.status == Scheduler.CoroCreated:
            print("  %s: rcoro %s created" % (msg.info.args[0], msg.info.coro), flush=True)


def client_proc(await_async, coro=None):
    computation = Computation([rcoro_proc], status_coro=Coro(status_proc))
    http_server = discoro.httpd.HTTPServer(computation, port=int(sys.argv[2]), poll_sec=1)
    if (yield computation.schedule()):
        raise Exception("schedule failed")
    seconds = 1 if await_async else 60
    for i in range(3):
        rcoro = yield computation.run_async(rcoro_proc, seconds)
    yield computation.close(await_async=await_async)
    http_server.shutdown(wait=False)
    print("closed", flush=True)


Scheduler(node="127.0.0.1", udp_port=PORT)
Coro(client_proc, sys.argv[3] == "wait")
"""

# a 2015 program: the seed's positional order, ProcInitialized starts the work, close()
SEED_STYLE = """
def job(n, coro=None):
    yield coro.sleep(0.1)
    raise StopIteration(n * 2)


def status_proc(coro=None):
    coro.set_daemon()
    while True:
        msg = yield coro.receive()
        if isinstance(msg, MonitorException):
            print("seed job %s -> %s" % (msg.args[0], msg.args[1][1]), flush=True)
        elif isinstance(msg, StatusMessage):
            print("seed status %s %s" % (msg.status, msg.info), flush=True)


def client_proc(coro=None):
    computation = Computation([job], Coro(status_proc), 10, 2)
    if (yield computation.schedule()):
        raise Exception("schedule failed")
    yield coro.sleep(0)
    nodes = []
    while not nodes:
        nodes = yield computation.nodes()
        yield coro.sleep(0.1)
    for n in range(4):
        rcoro = yield computation.run_at(nodes[0], job, n)
        print("seed run", type(rcoro).__name__, flush=True)
    yield coro.sleep(1)
    yield computation.close()
    print("seed closed", flush=True)


Scheduler(node="127.0.0.1", udp_port=PORT)
Coro(client_proc)
"""


def program(body: str, *args: str) -> PeerProcess:
    return PeerProcess(textwrap.dedent(HEAD) + textwrap.dedent(body), *args)


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


def procs_of(cluster: LocalCluster) -> set[str]:
    return {str(location) for location in cluster.procs.values()}


def test_run_results_prints_in_input_order(cluster: LocalCluster, udp_port: int) -> None:
    with program(RESULTS_IN_ORDER, str(udp_port)) as client:
        for i in range(10):
            match = client.expect(r"^    result for (\d+) from (\S+): \w{3} \w{3} ", timeout=60)
            assert int(match[1]) == i and match[2] in procs_of(cluster)
        assert client.wait(30) == 0


def test_run_right_after_schedule_with_the_httpd_and_close_waiting(
    cluster: LocalCluster, udp_port: int
) -> None:
    with program(RUN_THROTTLE_HTTPD, str(udp_port), str(free_port())) as client:
        client.expect(r"HTTP server for the computation's status", timeout=30)
        where = [client.expect(rf"^  job {i} processed by (\S+)$", 30)[1] for i in range(10)]
        assert set(where) == procs_of(cluster)  # both servers took jobs
        client.expect(r"^closed$", timeout=30)
        assert client.wait(30) == 0


def test_jobs_that_talk_to_the_client_and_a_close_that_waits(
    cluster: LocalCluster, udp_port: int
) -> None:
    with program(TALKING_JOBS, str(udp_port)) as client:
        requests = [client.expect(rf"^  request {i}: (\d+)$", timeout=30)[1] for i in range(6)]
        assert requests == [str(10 * i + 1) for i in range(6)]
        assert client.wait(60) == 0
    text = "\n".join(client.output)
    for i in range(6):
        n = 10 * i + 1
        assert re.search(rf"process at \S+ received: {n}$", text, re.MULTILINE), text
        assert re.search(rf"^    result for job \d+: {i}: {n}: \d+\.\d\d$", text, re.MULTILINE), (
            text
        )


def test_run_at_on_server_initialized_and_on_each_job_end(
    cluster: LocalCluster, udp_port: int
) -> None:
    with program(RUN_AT_ON_STATUS, str(udp_port)) as client:
        client.expect(r"^all done$", timeout=60)
        assert client.wait(30) == 0
    text = "\n".join(client.output)
    started = re.findall(r"^  rcoro_proc started at (\S+) with (\d+)$", text, re.MULTILINE)
    assert {where for where, _ in started} == procs_of(cluster)  # one per server at first
    finished = re.findall(r"^      rcoro_proc at (\S+) finished with (\d+)$", text, re.MULTILINE)
    assert sorted(int(n) for _, n in finished) == list(range(1, 9))


@pytest.mark.parametrize("mode", ["wait", "terminate"])
def test_async_jobs_with_the_httpd_relay(cluster: LocalCluster, udp_port: int, mode: str) -> None:
    with program(ASYNC_JOBS_HTTPD, str(udp_port), str(free_port()), mode) as client:
        client.expect(r"^closed$", timeout=45)
        assert client.wait(30) == 0
    text = "\n".join(client.output)
    created = re.findall(r"^  (\d+): rcoro (\S+) created$", text, re.MULTILINE)
    assert len(created) == 3 and {seconds for seconds, _ in created} == {
        "1" if mode == "wait" else "60"
    }
    done = set(re.findall(r"^    rcoro (\S+) done$", text, re.MULTILINE))
    if mode == "wait":  # close(await_async=True) waited for the async jobs
        for _, coro in created:  # what the remote job printed, shown here
            assert re.search(rf"rcoro {re.escape(coro)} started$", text, re.MULTILINE), text
        assert done == {coro for _, coro in created}, text
    # else close() terminated the 60 s jobs: "closed" came long before they could end


def test_a_2015_program_then_a_later_program_on_the_same_cluster(
    cluster: LocalCluster, udp_port: int
) -> None:
    with program(SEED_STYLE, str(udp_port)) as seed:
        seed.expect(r"^seed status 1 127\.0\.0\.1$", timeout=30)  # NodeDiscovered: the address
        seed.expect(r"^seed status 2 127\.0\.0\.1$", timeout=30)
        runs = [seed.expect(r"^seed run (\w+)$", timeout=30)[1] for _ in range(4)]
        assert runs == ["Coro"] * 4
        seed.expect(r"^seed closed$", timeout=30)
        assert seed.wait(30) == 0
    text = "\n".join(seed.output)
    values = sorted(re.findall(r"^seed job \S+ -> (\d+)$", text, re.MULTILINE))
    assert values == ["0", "2", "4", "6"]
    with program(RESULTS_IN_ORDER, str(udp_port)) as later:
        for i in range(10):
            assert int(later.expect(r"^    result for (\d+) from ", timeout=60)[1]) == i
        assert later.wait(30) == 0
