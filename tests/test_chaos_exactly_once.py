"""Seeded chaos: 500 numbered jobs on 2 nodes while processes are stopped, killed and cut
off at random; every job is reported exactly once, no result twice (issue 10).

Hosts 0 and 1 (network namespaces on one bridge) run a ``discoronode`` with two server
processes each; host 2 runs the client of `exactly_once` (a private scheduler, 500 jobs of
0.6 s, 8 at a time; a job reported lost is run again). Meanwhile a script, seeded from
``DISCORO_CHAOS_SEED`` (else at random; the seed is printed and in every failure message),
does one thing at a time for about a minute: stop a server process (SIGSTOP) for 1-9 s,
kill one (SIGKILL; its node starts another), or pull a node's cable for 2-12 s; then it
heals everything and waits for the client. Every number must finish exactly once, no
coroutine be reported twice, and the client never wait forever.
"""

from __future__ import annotations

import os
import random
import re
import signal
import tempfile
import time
from typing import TYPE_CHECKING

import psutil
import pytest

from exactly_once import CLIENT_PROGRAM, check_exactly_once
from netns import Topology, netns_unavailable
from test_fencing_stopped_server import server_processes, start_node

if TYPE_CHECKING:
    from collections.abc import Iterator

    from procs import PeerProcess

pytestmark = pytest.mark.netns

UDP_PORT = 51376  # private: these namespaces exist only for this test
JOBS = 500
JOB_SECONDS = 0.6  # 500 of them, 8 at a time: the chaos has about a minute to act
CHAOS_SECONDS = 60.0


@pytest.fixture
def lan(cluster_secret: str) -> Iterator[Topology]:
    why_not = netns_unavailable()
    if why_not is not None:
        pytest.skip(why_not)
    with Topology(3) as topology:
        yield topology


def signal_all(processes: list[psutil.Process], signum: int) -> None:
    for process in processes:
        try:
            process.send_signal(signum)
        except psutil.NoSuchProcess:
            continue


def chaos(
    lan: Topology, nodes: list[PeerProcess], client: PeerProcess, rng: random.Random
) -> list[str]:
    """Break things one at a time until the time is up or the client is done; what was done."""
    done: list[str] = []
    end = time.monotonic() + CHAOS_SECONDS
    while time.monotonic() < end and not any(line.startswith("ALL DONE") for line in client.output):
        index = rng.randrange(len(nodes))
        kind = rng.choice(["stop", "kill", "cut"])
        servers = server_processes(nodes[index])
        if kind == "stop" and servers:
            victim, seconds = rng.choice(servers), rng.uniform(1, 9)
            done.append(f"stop a server of node{index} for {seconds:.1f} s")
            signal_all([victim], signal.SIGSTOP)
            try:
                time.sleep(seconds)  # the length of the stop
            finally:
                signal_all([victim], signal.SIGCONT)
        elif kind == "kill" and servers:
            done.append(f"kill a server of node{index}")
            signal_all([rng.choice(servers)], signal.SIGKILL)
        elif kind == "cut":
            seconds = rng.uniform(2, 12)
            done.append(f"cut node{index} off for {seconds:.1f} s")
            lan.unplug(index)
            try:
                time.sleep(seconds)  # the length of the partition
            finally:
                lan.plug(index)
        time.sleep(rng.uniform(0.5, 2))  # some calm between faults
    return done


@pytest.mark.timeout(200)
def test_chaos_every_job_is_reported_exactly_once(lan: Topology) -> None:
    seed = int(os.environ.get("DISCORO_CHAOS_SEED") or random.randrange(2**32))
    print(f"chaos seed {seed} (set DISCORO_CHAOS_SEED={seed} to replay it)")
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="discoro-netns-") as dest:
        nodes = [start_node(lan, index, dest, 2, UDP_PORT) for index in (0, 1)]
        client = lan.spawn(
            2, CLIENT_PROGRAM, lan.addresses[2], str(UDP_PORT), str(JOBS), str(JOB_SECONDS), "8"
        )
        client.expect(r"^SCHEDULED 0$", timeout=15)
        client.expect(r"^PROCS [2-4]$", timeout=25)
        started = time.monotonic()
        done = chaos(lan, nodes, client, rng)
        print(f"seed {seed}: " + "; ".join(done))
        try:
            client.expect(rf"^ALL DONE {JOBS}$", timeout=90)
        except AssertionError as exc:
            raise AssertionError(f"chaos seed {seed} ({'; '.join(done)}): {exc}") from None
        print(f"all {JOBS} jobs finished {time.monotonic() - started:.0f} s after the chaos began")
        try:
            found = check_exactly_once(client.output, JOBS)
        except AssertionError as exc:
            raise AssertionError(f"chaos seed {seed} ({'; '.join(done)}): {exc}") from None
        lost = sum(1 for _, _, _, kind in found if kind != "StopIteration")
        print(f"seed {seed}: {len(found)} reports, {lost} of them lost and run again")
        tracebacks = [line for line in client.output if re.search(r"Traceback", line)]
        assert not tracebacks, f"chaos seed {seed}: {client.output}"
