"""No new work is placed on a server process whose event loop is stuck in user code (issue
10), with real processes: a node with 2 server processes on loopback and a client with its
private scheduler.

A job blocks one process's loop (``time.sleep``, or a CPU loop that never yields). Once the
scheduler knows (the process's heartbeat notes say how long its loop has not run; the status
snapshot shows it), 20 further ``run``s all land on the other process and start while the
first still blocks; none times out or waits for the blocker. When the blocker ends, runs use
both processes again. A ``run_at`` the stuck process waits for it up to the computation's
``timeout``, then fails with the reason. The scheduler logs the stuck process once and its
recovery once, and no process is reported lost. While every process is stuck, a ``run``
waits (the client logs why once, after the computation's ``timeout``) and goes to the
first process whose loop runs again.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import run_client

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro.cluster.local import LocalCluster
    from procs import PeerProcess


@pytest.fixture
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


HELPERS = """
def stuck_ones():
    return [proc["location"] for proc in Scheduler().status()["procs"] if proc["stuck"]]


def until(test, coro, seconds=30):
    # waits (bounded) until test() is true, looking every 0.1 s
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = test()
        if value:
            return value
        yield coro.sleep(0.1)
    return None
"""

PROGRAM = (
    HELPERS
    + """
def block(how, seconds, client, coro=None):
    import time
    end = time.time() + seconds
    if how == "sleep":
        time.sleep(seconds)
    else:
        while time.time() < end:  # never yields
            pass
    client.send(("WOKE", time.time()))
    yield coro.sleep(0)


def quick(i, client, seconds, coro=None):
    import time
    client.send(("STARTED", i, str(coro.location), time.time()))
    yield coro.sleep(seconds)


def client(coro=None):
    comp = yield from start([block, quick], coro, pulse_interval=1, timeout=TIMEOUT)
    procs = yield comp.procs()
    blocker = yield comp.run_at(procs[0], block, HOW, SECONDS, coro)
    out("BLOCKER", type(blocker).__name__, blocker.location)
    blocked = blocker.location
    stuck = yield from until(stuck_ones, coro)
    out("STUCK", stuck)
    slowest = 0.0
    for i in range(20):
        asked = time.monotonic()
        rcoro = yield comp.run(quick, i, coro, 0.2)
        slowest = max(slowest, time.monotonic() - asked)
        out("RUN", i, type(rcoro).__name__, getattr(rcoro, "location", None))
    out("SLOWEST %.3f" % slowest)
    asked = time.monotonic()
    aimed = yield comp.run_at(blocked, quick, 99, coro, 0.0)
    out("AIMED", aimed, "%.1f" % (time.monotonic() - asked), comp.last_error)
    woke = None
    while woke is None:
        msg = yield coro.receive(timeout=60)
        if msg is None:
            out("TIMED OUT")
            return "timed out"
        if msg[0] == "STARTED":
            out("STARTED", msg[1], msg[2], "%.3f" % msg[3])
        elif msg[0] == "WOKE":
            woke = msg[1]
            out("WOKE %.3f" % woke)
    again = yield from until(lambda: not stuck_ones(), coro)
    out("RUNS AGAIN", again)
    for i in range(20, 24):
        rcoro = yield comp.run(quick, i, coro, 2.0)
        out("RUN", i, type(rcoro).__name__, getattr(rcoro, "location", None))
    out("CLOSING")
    yield comp.close()
    return "ok"
"""
)


TIMEOUT = 4  # the computation's: how long a run aimed at a stuck process waits for it


def lines(client: PeerProcess, pattern: str) -> list[re.Match[str]]:
    return [m for m in (re.match(pattern, line) for line in client.output) if m]


@pytest.mark.timeout(150)
@pytest.mark.parametrize(("how", "seconds"), [("sleep", 20), ("spin", 16)])
def test_runs_go_to_the_other_process_while_a_job_blocks_its_loop(
    cluster: LocalCluster, udp_port: int, how: str, seconds: int
) -> None:
    settings = f"HOW, SECONDS, TIMEOUT = {how!r}, {seconds}, {TIMEOUT}\n"
    with run_client(settings + PROGRAM, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=30)
        blocked = client.expect(r"^BLOCKER Coro (\S+)$", timeout=30)[1]
        client.expect(rf"^STUCK \['{re.escape(blocked)}'\]$", timeout=40)
        client.expect(r"^WOKE ", timeout=60)
        client.expect(r"^RUNS AGAIN True$", timeout=40)
        client.expect(r"^DONE ok$", timeout=60)
        assert client.wait(15) == 0
    output = client.output
    first = lines(client, r"^RUN (\d+) (\S+) (\S+)$")
    assert [(int(m[1]), m[2]) for m in first] == [(i, "Coro") for i in range(24)], output
    others = {m[3] for m in first[:20]}
    assert len(others) == 1 and blocked not in others, output  # all on the other process
    # each started while the blocker still blocked its process's loop
    (woke,) = [float(m[1]) for m in lines(client, r"^WOKE ([\d.]+)$")]
    started = {int(m[1]): float(m[3]) for m in lines(client, r"^STARTED (\d+) (\S+) ([\d.]+)$")}
    assert sorted(started) == list(range(20)), output
    assert all(when < woke for when in started.values()), output
    # a run aimed at the stuck process waited for it, then was refused with the reason
    (aimed,) = lines(client, r"^AIMED None ([\d.]+) (.*)$")
    assert float(aimed[1]) >= TIMEOUT - 0.5, output
    assert f"server process {blocked} is busy in user code (its event loop has" in aimed[2]
    assert f"the run did not start (waited {TIMEOUT} s)" in aimed[2], output
    # after the blocker, both processes take runs again
    assert {m[3] for m in first[20:]} == others | {blocked}, output
    # the scheduler said it once each way; nothing was lost
    stuck_line = f"- process {blocked} is busy in user code (its event loop has not run for "
    said_stuck = [line for line in output if stuck_line in line]
    said_again = [line for line in output if f"- process {blocked} runs again (" in line]
    assert len(said_stuck) == 1 and len(said_again) == 1, output
    assert not lines(client, r"^STATUS (Proc|Node)Disconnected "), output
    assert not lines(client, r"^TIMED OUT"), output
    assert not [line for line in output if "no reply" in line], output


ALL_STUCK = (
    HELPERS
    + """
def block(seconds, client, coro=None):
    import time
    time.sleep(seconds)
    client.send(("WOKE", str(coro.location), time.time()))
    yield coro.sleep(0)


def quick(client, coro=None):
    import time
    client.send(("STARTED", str(coro.location), time.time()))
    yield coro.sleep(0)


def client(coro=None):
    comp = yield from start([block, quick], coro, pulse_interval=1, timeout=TIMEOUT)
    procs = yield comp.procs()
    for where, seconds in zip(procs, (12, 18)):
        rcoro = yield comp.run_at(where, block, seconds, coro)
        out("BLOCKER", type(rcoro).__name__, where, seconds)
    both = yield from until(lambda: len(stuck_ones()) == 2, coro)
    out("BOTH STUCK", bool(both))
    rcoro = yield comp.run(quick, coro)
    out("RUN", type(rcoro).__name__, getattr(rcoro, "location", None))
    for _ in range(3):
        msg = yield coro.receive(timeout=60)
        if msg is None:
            out("TIMED OUT")
            break
        out(msg[0], msg[1], "%.3f" % msg[2])
    yield comp.close()
    return "ok"
"""
)


@pytest.mark.timeout(150)
def test_a_run_waits_while_every_process_is_stuck_says_why_and_goes_to_the_first_free(
    cluster: LocalCluster, udp_port: int
) -> None:
    with run_client(f"TIMEOUT = {TIMEOUT}\n" + ALL_STUCK, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=30)
        first = client.expect(r"^BLOCKER Coro (\S+) 12$", timeout=30)[1]
        second = client.expect(r"^BLOCKER Coro (\S+) 18$", timeout=30)[1]
        client.expect(r"^BOTH STUCK True$", timeout=40)
        waits = client.expect(r"run of quick still waits: (.*)$", timeout=30)[1]
        client.expect(r"^DONE ok$", timeout=60)
        assert client.wait(15) == 0
    output = client.output
    assert waits.startswith(
        "every server process that could take it is busy in user code (event loops stuck: "
    ), output
    assert f"{first} for" in waits and f"{second} for" in waits, output
    assert waits.endswith(f"the run waits (waited {TIMEOUT} s)"), output
    assert lines(client, rf"^RUN Coro {re.escape(first)}$"), output  # the first to run again
    woke = {m[1]: float(m[2]) for m in lines(client, r"^WOKE (\S+) ([\d.]+)$")}
    (started,) = [float(m[2]) for m in lines(client, r"^STARTED (\S+) ([\d.]+)$")]
    assert woke[first] <= started < woke[second], output
    assert not lines(client, r"^STATUS (Proc|Node)Disconnected "), output
    assert not lines(client, r"^TIMED OUT"), output
