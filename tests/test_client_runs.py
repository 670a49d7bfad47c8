"""What a new user meets when running work (issue 11): every ``run*`` right after
``schedule()`` gets a process that is being set up (``run`` and the fan-outs wait for it),
and a run that cannot happen says why (a warning, and `Computation.last_error`), also with
no node at all."""

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

RIGHT_AFTER_SCHEDULE = """
def job(n, coro=None):
    yield coro.sleep(0)
    return n


def client(coro=None):
    comp = Computation([job], status_coro=Coro(status_proc))
    out("SCHEDULE", (yield comp.schedule()))
    # no waiting for ProcInitialized: the processes are still being set up
    methods = (
        ("RUN", lambda: comp.run(job, 1)),
        ("RUN_AT", lambda: comp.run_at("127.0.0.1", job, 2)),
        ("RUN_EACH", lambda: comp.run_each("127.0.0.1", job, 3)),
        ("RUN_NODES", lambda: comp.run_nodes(job, 4)),
        ("RUN_PROCS", lambda: comp.run_procs(job, 5)),
        ("RUN_NODE_PROCS", lambda: comp.run_node_procs("127.0.0.1", job, 6)),
    )
    for label, call in methods:
        result = yield call()
        created = result if isinstance(result, list) else [result]
        out(label, [type(rc).__name__ for rc in created], comp.last_error)
    yield comp.close()
    return "ok"
"""

NO_NODE = """
def job(n, coro=None):
    yield coro.sleep(0)


def client(coro=None):
    comp = Computation([job], timeout=2)
    out("SCHEDULE", (yield comp.schedule()))
    result = yield comp.run_procs(job, 1)
    out("RUN_PROCS", result, comp.last_error)
    result = yield comp.run_at("127.0.0.1", job, 1)
    out("RUN_AT", result, comp.last_error)
    yield comp.close()
    return "ok"
"""


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


def test_every_run_method_right_after_schedule_waits_for_the_processes(
    cluster: LocalCluster, udp_port: int
) -> None:
    with run_client(RIGHT_AFTER_SCHEDULE, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        client.expect(r"^RUN \['Coro'\] None$", timeout=20)
        client.expect(r"^RUN_AT \['Coro'\] None$")
        client.expect(r"^RUN_EACH \['Coro'\] None$")
        client.expect(r"^RUN_NODES \['Coro'\] None$")
        # a fan-out waits until every process of the node has finished its setup
        client.expect(r"^RUN_PROCS \['Coro', 'Coro'\] None$")
        client.expect(r"^RUN_NODE_PROCS \['Coro', 'Coro'\] None$")
        client.expect(r"^DONE ok$")
        assert client.wait(10) == 0
    assert not [line for line in client.output if "failed" in line], client.output


def test_with_no_node_runs_fail_with_the_reason(cluster_secret: str) -> None:
    """A fan-out fails at the timeout; a run at a node fails at once (later-versions D3; a run
    without a target waits for a node: tests/test_later_close.py)."""
    lonely_port = free_port(socket.SOCK_DGRAM)  # no node listens here
    with run_client(NO_NODE, lonely_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        reason = r"no node: the scheduler has found no server process \(waited 2 s\)"
        # the warning the user sees, then what the program gets
        client.expect(rf"run of job failed: {reason}", timeout=20)
        client.expect(rf"^RUN_PROCS \[\] {reason}$")
        reason = "node 127.0.0.1 is not a known node"
        client.expect(rf"run of job failed: {reason}", timeout=20)
        client.expect(rf"^RUN_AT None {reason}$")
        client.expect(r"^DONE ok$")
        assert client.wait(10) == 0
