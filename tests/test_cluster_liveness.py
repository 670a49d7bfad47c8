"""Long jobs are not failures; runaway jobs are terminated (issue 10), on loopback.

A server whose event loop is busy in user code still says it lives, from its heartbeat
thread (`discoro.net.liveness`); so does a client. With a pulse interval of 1 s (so 5 s of
silence is the write-off limit): a discoro_client8-style program whose jobs block 10-12 s per
message prints its results, and a client blocked for 12 s keeps its computation, with no
process reported lost. A job that never yields and is terminated (through its handle, or
the status page's terminate) ends its process after the grace period; the client hears of it
once, and the node's process count is restored. (The
30 s sleeping and computing jobs run across hosts: test_liveness_netns.py.)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import run_client
from discoro.cluster.constants import TERMINATE_GRACE

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro.cluster.local import LocalCluster
    from procs import PeerProcess


@pytest.fixture
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


def lines(client: PeerProcess, pattern: str) -> list[str]:
    return [line for line in client.output if re.match(pattern, line)]


def lost_or_closed(client: PeerProcess) -> list[str]:
    """Processes reported lost, or closed before the program closed its computation."""
    output = client.output
    before = output[: output.index("CLOSING")] if "CLOSING" in output else output
    lost = [line for line in output if re.match(r"^STATUS (Proc|Node)Disconnected ", line)]
    return lost + [line for line in before if re.match(r"^STATUS (Proc|Node)Closed ", line)]


RUNAWAY = """
def spin(coro=None):
    while True:  # never yields: only ending its process can stop it
        pass
    yield


def nap(coro=None):
    yield coro.sleep(300)


def client(coro=None):
    LISTENERS.append(coro)
    comp = yield from start([spin, nap], coro, pulse_interval=1)
    procs = yield comp.procs()
    known = set(str(where) for where in procs)
    napper = yield comp.run_at(procs[0], nap)
    spinner = yield comp.run_at(procs[0], spin)
    out("RUNNING", procs[0], type(napper).__name__, napper, type(spinner).__name__, spinner)
    # soon after it started spinning: its server has likely not sent a heartbeat yet, so
    # the terminate's UDP notes find where to go only when they are due (net.liveness)
    yield coro.sleep(0.3)
    started = time.monotonic()
    if HOW == "status page":  # what the status page's terminate button does
        out("TERMINATED", Scheduler().terminate_coros([str(spinner)]))
    else:
        spinner.terminate()
    reports, again = 0, False
    while reports < 2 or not again:
        msg = yield coro.receive(timeout=40)
        if msg is None:
            out("TIMED OUT")
            break
        if isinstance(msg, MonitorException):
            reports += 1
            out("ENDED", msg.args[0], time.monotonic() - started)
        elif msg.status == Scheduler.ProcInitialized and str(msg.info) not in known:
            again = True  # the node started a new server; it joined the computation
    yield coro.sleep(2)  # a second report of either coroutine would show up meanwhile
    out("PROCS", len((yield comp.procs())))
    yield comp.close()
    return "ok"
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["handle", "status page"])
def test_a_runaway_job_terminated_ends_its_process(
    cluster: LocalCluster, udp_port: int, how: str
) -> None:
    with run_client(f"HOW = {how!r}\n" + RUNAWAY, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        running = client.expect(r"^RUNNING (\S+) Coro (\S+) Coro (\S+)$", timeout=20)
        where, napper, spinner = running.groups()
        ended = client.expect(rf"^ENDED {re.escape(spinner)} ([\d.]+)$", timeout=30)
        client.expect(r"^DONE ok$", timeout=60)
        assert client.wait(15) == 0
    assert float(ended[1]) < TERMINATE_GRACE + 5, client.output
    # the terminated coroutine ends as any terminate does; the other one is lost, saying why
    assert lines(client, rf"^MONITOR {re.escape(spinner)} ") == [
        f"MONITOR {spinner} StopIteration None"
    ], client.output
    (lost,) = lines(client, rf"^MONITOR {re.escape(napper)} ")
    assert lost.startswith(f"MONITOR {napper} ProcessLost "), lost
    assert f"{spinner} was terminated while a job kept its event loop busy" in lost, lost
    assert lines(client, rf"^STATUS ProcDisconnected {re.escape(where)}$"), client.output
    assert lines(client, r"^PROCS 2$"), client.output  # the node's process count is restored
    assert not lines(client, r"^TIMED OUT"), client.output
    assert any("ending this process" in line for line in cluster.output), cluster.output


# In the style of 4.5.6's discoro_client8 (later-versions.md D10): remote jobs block their
# server with time.sleep for each message they get, while the client sends them more.
CLIENT8 = """
import random


def rcoro_proc(client, coro=None):
    import time
    total = 0.0
    while True:
        value = yield coro.receive()
        if value is None:
            break
        time.sleep(value)  # blocks the server for 10 s or more per message
        total += value
    client.send((str(coro.location), total))


def client(coro=None):
    comp = yield from start([rcoro_proc], coro, pulse_interval=1)
    rcoros = []
    for i in range(2):
        rcoro = yield comp.run(rcoro_proc, coro)
        if isinstance(rcoro, Coro):
            out("  job %s processed by %s" % (i, rcoro.location))
            rcoros.append(rcoro)
    for rcoro in rcoros:
        for _ in range(2):  # the second waits in the mailbox while the first blocks
            rcoro.send(random.uniform(10, 12))
        rcoro.send(None)
    for _ in rcoros:
        result = yield coro.receive(timeout=60)
        if result is None:
            out("TIMED OUT")
            break
        out("    %s computed result: %.4f" % result)
    out("CLOSING")
    yield comp.close()
    return "ok"
"""


@pytest.mark.timeout(120)
def test_client8_style_blocking_jobs_print_their_results(
    cluster: LocalCluster, udp_port: int
) -> None:
    with run_client(CLIENT8, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        jobs = [client.expect(rf"^  job {i} processed by (\S+)$", timeout=20)[1] for i in (0, 1)]
        results = [
            client.expect(r"^    (\S+) computed result: (\d+\.\d{4})$", timeout=60)
            for _ in range(2)
        ]
        client.expect(r"^DONE ok$", timeout=30)
        assert client.wait(15) == 0
    assert sorted(match[1] for match in results) == sorted(jobs), client.output
    assert all(20 <= float(match[2]) <= 24 for match in results), client.output
    reports = [line.split()[1] for line in lines(client, r"^MONITOR ")]
    assert len(reports) == len(set(reports)) == 2, client.output  # each job once
    assert len(lines(client, r"^MONITOR \S+ StopIteration ")) == 2, client.output  # normally
    assert not lost_or_closed(client), client.output


BUSY_CLIENT = """
def nap(seconds, coro=None):
    yield coro.sleep(seconds)
    return "napped"


def client(coro=None):
    LISTENERS.append(coro)
    comp = yield from start([nap], coro, pulse_interval=1)
    rcoro = yield comp.run(nap, 3)
    out("RUNNING", type(rcoro).__name__, rcoro)
    time.sleep(12)  # the client's own loop (and its private scheduler's) blocked for 12 s
    out("AWAKE")
    msg = yield coro.receive(timeout=30)
    while msg is not None and not isinstance(msg, MonitorException):
        msg = yield coro.receive(timeout=30)
    rcoro = yield comp.run(nap, 0)  # the computation still works
    out("AGAIN", type(rcoro).__name__)
    out("CLOSING")
    yield comp.close()
    return "ok"
"""


@pytest.mark.timeout(90)
def test_a_busy_client_keeps_its_computation(cluster: LocalCluster, udp_port: int) -> None:
    """A client whose loop (and private scheduler's) is blocked for 12 s is not taken for
    gone by its servers, and its own silence rules do not give up on them."""
    with run_client(BUSY_CLIENT, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        coro = client.expect(r"^RUNNING Coro (\S+)$", timeout=20)[1]
        client.expect(r"^AWAKE$", timeout=30)
        client.expect(r"^AGAIN Coro$", timeout=30)
        client.expect(r"^DONE ok$", timeout=30)
        assert client.wait(15) == 0
    assert lines(client, rf"^MONITOR {re.escape(coro)} ") == [
        f"MONITOR {coro} StopIteration 'napped'"
    ], client.output
    assert not lost_or_closed(client), client.output
    assert not any("Lost" in line or "unreachable" in line for line in client.output)
