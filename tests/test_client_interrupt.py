"""Ctrl-C in a client (issue 11): the first SIGINT closes its computation (its remote
coroutines are terminated, the shared scheduler serves the next client) and the client exits
with status 130; a second SIGINT exits at once. Real client processes, a real node and the
shared ``discoro`` scheduler program."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import PRELUDE, run_client
from procs import PeerProcess
from test_cluster_shared import SCHEDULER

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro.cluster.local import LocalCluster

BUSY = """
def job(coro=None):
    yield coro.sleep(1000)  # runs until it is terminated


def client(coro=None):
    comp = yield from start([job], coro)
    rcs = yield comp.run_procs(job)
    out("RUNNING", len(rcs))
    if BLOCK_LOOP:
        out("BLOCKING")
        time.sleep(60)  # holds the kernel's thread: closing cannot proceed
    yield coro.sleep(1000)
    return "never"
"""

ENDINGS = {
    # the main thread waits in Coro.value()
    "value": "main(client, private=False)\n",
    # the main thread falls off the end and waits in the kernel's exit hook
    "atexit": "discoro.AsynCoro(node='127.0.0.1', udp_port=PORT)\nCoro(client)\n",
}

NEXT = """
def probe(coro=None):
    yield coro.sleep(0)
    return "probed"


def client(coro=None):
    comp = yield from start([probe], coro)
    rcs = yield comp.run_procs(probe)
    out("NEXT RAN", len(rcs), comp.last_error)
    yield comp.close()
    return "next"
"""


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


@pytest.fixture
def scheduler(cluster: LocalCluster, udp_port: int) -> Iterator[PeerProcess]:
    args = ["scheduler", "-i", "127.0.0.1", "-u", str(udp_port)]
    with PeerProcess(SCHEDULER, *args) as program:
        program.expect(r"^discoro: scheduler ready at ", timeout=20)
        yield program


def busy_client(udp_port: int, ending: str, block_loop: bool = False) -> PeerProcess:
    program = PRELUDE + f"\nBLOCK_LOOP = {block_loop}\n" + BUSY + "\n" + ENDINGS[ending]
    return PeerProcess(program, str(udp_port), "2")


def assert_next_client_is_served(udp_port: int) -> None:
    with run_client(NEXT, udp_port, private=False) as following:
        following.expect(r"^SCHEDULE 0$", timeout=30)
        # both processes were freed: each takes the new computation
        following.expect(r"^NEXT RAN 2 None$", timeout=20)
        following.expect(r"^DONE next$")
        assert following.wait(10) == 0


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_first_sigint_closes_the_computation_and_exits_130(
    scheduler: PeerProcess, udp_port: int, ending: str
) -> None:
    with busy_client(udp_port, ending) as client:
        client.expect(r"^RUNNING 2$", timeout=30)
        client.proc.send_signal(signal.SIGINT)
        client.expect(r"interrupted: closing 1 computation\(s\)")
        assert client.wait(30) == 130
    assert not [line for line in client.output if "Traceback" in line], client.output
    assert_next_client_is_served(udp_port)


def test_second_sigint_exits_at_once(scheduler: PeerProcess, udp_port: int) -> None:
    with busy_client(udp_port, "value", block_loop=True) as client:
        client.expect(r"^BLOCKING$", timeout=30)
        client.proc.send_signal(signal.SIGINT)
        client.expect(r"interrupted: closing 1 computation\(s\)")
        client.proc.send_signal(signal.SIGINT)  # closing waits for the blocked kernel
        assert client.wait(30) == 130
    # the scheduler sees the client go and serves the next one
    assert_next_client_is_served(udp_port)


def test_sigint_without_a_computation_is_a_keyboard_interrupt(udp_port: int) -> None:
    program = """
import sys, time
import discoro
discoro.Coro  # the facade installs the cluster layer on the main thread
try:
    print("READY", flush=True)
    time.sleep(60)
except KeyboardInterrupt:
    print("KEYBOARD INTERRUPT", flush=True)
"""
    with PeerProcess(program) as plain:
        plain.expect(r"^READY$", timeout=20)
        plain.proc.send_signal(signal.SIGINT)
        plain.expect(r"^KEYBOARD INTERRUPT$")
        assert plain.wait(20) == 0
