"""Every component kind a `Computation` ships, the status messages its status coroutine gets,
and that ``close()`` leaves nothing behind for the next computation."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import run_client
from discoro.cluster.status import Status

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from discoro.cluster.local import LocalCluster


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


COMPONENTS = """
import importlib.util

MODULE_PATH, DATA_PATH = sys.argv[3], sys.argv[4]
spec = importlib.util.spec_from_file_location("shipmod", MODULE_PATH)
shipmod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(shipmod)


class Point:
    def __init__(self, x):
        self.x = x


def double_point(point, client, coro=None):
    yield coro.sleep(0)
    client.send(Point(point.x * 2))


async def async_job(n, client, coro=None):
    await coro.sleep(0)
    client.send(("async", n + 1))


FACTOR = 3
scale = lambda n: n * FACTOR  # noqa: E731


def closure_job(n, client, coro=None):
    yield coro.sleep(0)
    client.send(("closure", scale(n)))


def module_job(client, coro=None):
    import shipmod as m
    import pathmod
    yield coro.sleep(0)
    client.send(("module", m.triple(5), pathmod.NAME))


def data_job(client, coro=None):
    yield coro.sleep(0)
    with open(os.path.basename(DATA_PATH_ON_CLIENT)) as f:
        client.send(("data", f.read().strip()))


DATA_PATH_ON_CLIENT = DATA_PATH


def set_global(value, client, coro=None):
    global SHARED
    SHARED = value
    yield coro.sleep(0)
    client.send(("set", value))


def get_global(client, coro=None):
    yield coro.sleep(0)
    client.send(("get", SHARED))


def probe(client, coro=None):
    import importlib
    yield coro.sleep(0)
    names = [n for n in ("SHARED", "Point", "double_point") if n in globals()]
    try:
        importlib.import_module("pathmod")
        imported = True
    except ImportError:
        imported = False
    client.send(("probe", names, sorted(os.listdir(".")), imported))


def not_shipped(n, client, coro=None):
    yield coro.sleep(0)
    client.send(("not shipped", n * 100))


def failing(coro=None):
    yield coro.sleep(0)
    raise ValueError("remote boom")


def ending(coro=None):
    yield coro.sleep(0)
    return 42


def client(coro=None):
    components = [Point, double_point, async_job, closure_job, module_job, data_job,
                  set_global, get_global, shipmod, sys.argv[5], DATA_PATH, failing, ending]
    comp = yield from start(components, coro)
    procs = yield comp.procs()
    rc = yield comp.run(double_point, Point(21), coro)
    got = yield coro.receive(timeout=10)
    out("CLASS", type(got).__module__, type(got).__name__, isinstance(got, Point), got.x)
    yield comp.run(async_job, 1, coro)
    out("ASYNC", (yield coro.receive(timeout=10)))
    yield comp.run(closure_job, 2, coro)
    out("CLOSURE", (yield coro.receive(timeout=10)))
    yield comp.run_each("proc", module_job, coro)
    out("MODULE", (yield coro.receive(timeout=10)), (yield coro.receive(timeout=10)))
    yield comp.run(data_job, coro)
    out("DATA", (yield coro.receive(timeout=10)))
    yield comp.run(not_shipped, 4, coro)
    out("NOT_SHIPPED", (yield coro.receive(timeout=10)))
    yield comp.run_at(procs[0], set_global, "one", coro)
    yield coro.receive(timeout=10)
    yield comp.run_at(procs[0], get_global, coro)
    out("GLOBAL", (yield coro.receive(timeout=10)))
    LISTENERS.append(coro)  # status messages come here too until both jobs have ended
    failing_rc = yield comp.run(failing)
    out("FAILING", failing_rc)
    ending_rc = yield comp.run(ending)
    out("ENDING", ending_rc)
    pending = {str(failing_rc), str(ending_rc)}
    while pending:  # they end by themselves, not by the close below
        msg = yield coro.receive(timeout=10)
        if msg is None:
            break
        if isinstance(msg, MonitorException):
            pending.discard(str(msg.args[0]))
    LISTENERS.remove(coro)
    while (yield coro.receive(timeout=0)) is not None:
        pass  # status messages queued before the removal
    out("CLOSE", (yield comp.close()))
    # a second computation on the same processes sees nothing of the first one
    comp = yield from start([probe], coro)
    rcs = yield comp.run_procs(probe, coro)
    for _ in rcs:
        out("PROBE", (yield coro.receive(timeout=10)))
    yield comp.close()
    return "ok"
"""


@pytest.mark.timeout(60)
def test_components_status_and_cleanup(
    cluster: LocalCluster, udp_port: int, tmp_path: Path
) -> None:
    (tmp_path / "shipmod.py").write_text("def triple(n):\n    return 3 * n\n")
    (tmp_path / "pathmod.py").write_text("NAME = 'pathmod here'\n")
    (tmp_path / "data.txt").write_text("some data\n")
    procs = sorted(str(loc) for loc in cluster.procs.values())
    args = [str(tmp_path / name) for name in ("shipmod.py", "data.txt", "pathmod.py")]
    program = COMPONENTS.replace("sys.argv[3], sys.argv[4]", f"{args[0]!r}, {args[1]!r}")
    program = program.replace("sys.argv[5]", repr(args[2]))
    with run_client(program, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        # classes from the client's __main__ travel both ways
        client.expect(r"^CLASS __main__ Point True 42$")
        client.expect(r"^ASYNC \('async', 2\)$")
        client.expect(r"^CLOSURE \('closure', 6\)$")
        module = r"\('module', 15, 'pathmod here'\)"
        client.expect(rf"^MODULE {module} {module}$")
        client.expect(r"^DATA \('data', 'some data'\)$")
        client.expect(r"^NOT_SHIPPED \('not shipped', 400\)$")
        client.expect(r"^GLOBAL \('get', 'one'\)$")
        failing = client.expect(r"^FAILING (\S+)$")[1]
        ending = client.expect(r"^ENDING (\S+)$")[1]
        client.expect(r"^CLOSE 0$")
        for _ in procs:
            probe = client.expect(r"^PROBE (.*)$")[1]
            assert probe == "('probe', [], [], False)", probe
        client.expect(r"^DONE ok$")
        assert client.wait(10) == 0
    lines = client.output
    monitors = {line.split()[1]: line for line in lines if line.startswith("MONITOR ")}
    assert monitors[failing].startswith(f"MONITOR {failing} ValueError ")
    assert "Traceback" in monitors[failing] and "remote boom" in monitors[failing]
    assert monitors[ending] == f"MONITOR {ending} StopIteration 42"
    # one MonitorException per remote coroutine, one CoroCreated each
    created = [line for line in lines if line.startswith("STATUS CoroCreated ")]
    created_names = {re.search(r"coro=(\S+?),", line)[1] for line in created}  # type: ignore[index]
    assert created_names == set(monitors), (created_names ^ set(monitors), lines)
    assert len(created) == len(monitors) == 11 + len(procs)
    status = [line for line in lines if line.startswith("STATUS ")]
    for name in ("NodeDiscovered", "NodeInitialized"):
        assert f"STATUS {name} 127.0.0.1" in status
    for proc in procs:
        for name in ("ProcDiscovered", "ProcInitialized"):
            assert f"STATUS {name} {proc}" in status


def test_server_aliases() -> None:
    for name in ("Discovered", "Initialized", "Closed", "Ignore", "Disconnected"):
        value = getattr(Status, "Proc" + name)
        assert getattr(Status, "Server" + name) == value
        assert getattr(discoro.Scheduler, "Server" + name) == value
        assert getattr(discoro.Scheduler, "Proc" + name) == value
