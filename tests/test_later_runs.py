"""The later versions' run methods against a real node with two server processes (later-
versions §2, D3): ``run_result*`` give the job's value (or the exception, or the failure
reply), ``run_results`` keeps input order and 4.5.6's argument quirks, ``async def`` clients
get the value or a `RunError` with the remote traceback, ``run_async*`` never take a CPU
slot, ``run``/``run_at`` never wait for one, and a run without a target waits for the first
ready server."""

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

RESULTS = """
def square(n, coro=None):
    yield coro.sleep(0.01)
    return n * n


def add(a, b, coro=None):
    yield coro.sleep(0)
    return (a, b, str(coro.location))


def count(*chars, coro=None):
    yield coro.sleep(0)
    return len(chars)


def fails(n, coro=None):
    yield coro.sleep(0)
    raise ValueError("bad %s" % n)


def holds_slot(seconds, coro=None):
    yield coro.sleep(seconds)
    return "held"


def client(coro=None):
    comp = yield from start([square, add, count, fails, holds_slot], coro)
    procs = sorted((yield comp.procs()), key=str)
    out("RESULT", (yield comp.run_result(square, 7)))
    out("RESULT_AT_NODE", (yield comp.run_result_at("127.0.0.1", square, 8)))
    value = yield comp.run_result_at(procs[1], add, 1, 2)
    out("RESULT_AT_PROC", value[:2], value[2] == str(procs[1]))
    out("RESULTS", (yield comp.run_results(square, range(6))))
    # a tuple is the argument tuple; another iterable becomes one (a str is split: 4.5.6)
    pairs = yield comp.run_results(add, [(1, 2), [3, 4]])
    out("RESULTS_TUPLES", [pair[:2] for pair in pairs])
    out("RESULTS_STR", (yield comp.run_results(count, ["abc", 5])))
    error = yield comp.run_result(fails, 3)
    out("FAILED", type(error).__name__, error,
        "ValueError" in error.remote_traceback and "fails" in error.remote_traceback)
    mixed = yield comp.run_results(fails, [1])
    out("RESULTS_FAILED", [type(e).__name__ for e in mixed])
    bad = yield comp.run_result(square)  # missing argument: not created
    out("NOT_CREATED", type(bad).__name__, bad[0].__name__, bad[1])
    gone = yield comp.run_result_at("127.0.0.9", square, 1)
    out("UNKNOWN_NODE", gone, comp.last_error)
    # CPU slots: a job holds its server's slot; run_result waits, run and run_async do not
    holder = yield comp.run_at(procs[0], holds_slot, 2)
    other = yield comp.run_at(procs[1], holds_slot, 2)
    started = time.monotonic()
    rc = yield comp.run(square, 2)
    ra = yield comp.run_async(square, 3)
    out("NO_WAIT", type(rc).__name__, type(ra).__name__, time.monotonic() - started < 1.5)
    value = yield comp.run_result_at(procs[0], square, 4)
    out("WAITED_FOR_SLOT", value, time.monotonic() - started > 1.0)
    yield comp.close()
    return "ok"
"""

ASYNC_CLIENT = """
from discoro import RunError


def square(n, coro=None):
    yield coro.sleep(0)
    return n * n


async def fails(n, coro=None):
    await coro.sleep(0)
    raise KeyError("missing %s" % n)


async def client(coro=None):
    comp = Computation([square, fails], status_coro=Coro(status_proc))
    out("SCHEDULE", await comp.schedule())
    # no server may be ready yet: run_result waits for a free slot
    out("VALUE", await comp.run_result(square, 6))
    out("VALUES", await comp.run_results(square, [1, 2, 3]))
    try:
        await comp.run_result(fails, 9)
    except RunError as exc:
        out("RAISED", exc.type_name, type(exc.exception).__name__,
            type(exc.__cause__).__name__, "KeyError" in exc.traceback_text,
            "fails" in exc.traceback_text)
    try:
        await comp.run_results(square, [1, "xy"])  # square(*"xy") has two arguments
    except RunError as exc:
        out("RESULTS_RAISED", exc.type_name, "could not be created" in exc.message)
    rc = await comp.run_async(square, 2)
    out("ASYNC", type(rc).__name__)
    await comp.close()
    return "ok"
"""


LOST_SERVER = """
def dies(coro=None):
    yield coro.sleep(0.5)
    os._exit(3)  # the server process dies under the job


def client(coro=None):
    comp = yield from start([dies], coro)
    out("LOST", (yield comp.run_result(dies)))
    yield comp.close()
    return "ok"
"""


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


def test_run_result_family_in_a_generator_client(cluster: LocalCluster, udp_port: int) -> None:
    with run_client(RESULTS, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=30)
        client.expect(r"^RESULT 49$", timeout=30)
        client.expect(r"^RESULT_AT_NODE 64$")
        client.expect(r"^RESULT_AT_PROC \(1, 2\) True$")
        client.expect(r"^RESULTS \[0, 1, 4, 9, 16, 25\]$")
        client.expect(r"^RESULTS_TUPLES \[\(1, 2\), \(3, 4\)\]$")
        client.expect(r"^RESULTS_STR \[3, 1\]$")
        client.expect(r"^FAILED ValueError bad 3 True$")
        client.expect(r"^RESULTS_FAILED \['ValueError'\]$")
        client.expect(r"^NOT_CREATED tuple TypeError square$")
        client.expect(r"^UNKNOWN_NODE None node 127.0.0.9 is not a known node$")
        client.expect(r"^NO_WAIT Coro Coro True$")
        client.expect(r"^WAITED_FOR_SLOT 16 True$", timeout=30)
        client.expect(r"^DONE ok$", timeout=30)
        assert client.wait(30) == 0


def test_async_client_gets_values_and_run_errors(cluster: LocalCluster, udp_port: int) -> None:
    with run_client(ASYNC_CLIENT, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=30)
        client.expect(r"^VALUE 36$", timeout=30)
        client.expect(r"^VALUES \[1, 4, 9\]$")
        client.expect(r"^RAISED KeyError KeyError KeyError True True$")
        client.expect(r"^RESULTS_RAISED TypeError True$")
        client.expect(r"^ASYNC Coro$")
        client.expect(r"^DONE ok$", timeout=30)
        assert client.wait(30) == 0


def test_run_result_whose_server_dies_gives_none(cluster_secret: str) -> None:
    port = free_port(socket.SOCK_DGRAM)  # a node of its own: this test kills its servers
    with (
        discoro.local_cluster(procs=2, udp_port=port, secret=cluster_secret),
        run_client(LOST_SERVER, port) as client,
    ):
        client.expect(r"^MONITOR \S+ ProcessLost ", timeout=60)
        client.expect(r"^LOST None$", timeout=60)
        client.expect(r"^DONE ok$", timeout=30)
        assert client.wait(30) == 0
