"""node_setup / server_setup / disable_nodes / disable_servers against a real node
(later-versions 3.4, 3.5, D9): node_setup runs once per node and its globals are seen by
every server of the node; server_setup runs in each server; enable_node / enable_server pass
their arguments; a failing hook keeps the node or server out and the client is told why."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import run_client

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro.cluster.local import LocalCluster


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


WAIT_FOR = """
def wait_for(coro, code, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        msg = yield coro.receive(timeout=1)
        if getattr(msg, "status", None) == code:
            return msg
    return None


def wait_procs(comp, coro, count, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        procs = yield comp.procs()
        if len(procs) >= count:
            return procs
        yield coro.sleep(0.05)
    return (yield comp.procs())
"""

HOOKS = (
    WAIT_FOR
    + """
def node_setup(factor, coro=None):
    global NODE_DATA
    print("NODE_SETUP RAN", os.getcwd() == os.path.dirname(os.getcwd()) or "ok")
    NODE_DATA = {"value": 21 * factor}
    yield coro.sleep(0)
    return 0


def server_setup(tag, coro=None):
    global SERVER_TAG
    SERVER_TAG = (tag, os.getpid())
    yield coro.sleep(0)
    return 0


def job(client, coro=None):
    yield coro.sleep(0)
    client.send((NODE_DATA["value"], SERVER_TAG[0], SERVER_TAG[1] == os.getpid()))


def client(coro=None):
    LISTENERS.append(coro)
    comp = Computation([job], status_coro=Coro(status_proc), node_setup=node_setup,
                       server_setup=server_setup, disable_nodes=True, disable_servers=True)
    out("SCHEDULE", (yield comp.schedule()))
    found = yield from wait_for(coro, discoro.Scheduler.NodeDiscovered)
    info = found.info
    out("NODEINFO", isinstance(info, str), info == info.addr, info.cpus, info.name,
        type(info.avail_info.location).__name__)
    yield comp.enable_node(info.avail_info.location, 2)
    enabled = 0
    while enabled < 2:
        msg = yield from wait_for(coro, discoro.Scheduler.ServerDiscovered)
        if msg is None:
            break
        comp.enable_server(msg.info, "tag-%d" % enabled)
        enabled += 1
    procs = yield from wait_procs(comp, coro, 2)
    out("PROCS", len(procs))
    LISTENERS.remove(coro)
    rcs = yield comp.run_procs(job, coro)
    replies = []
    while len(replies) < len(rcs):
        msg = yield coro.receive(timeout=10)
        if msg is None:
            break
        if isinstance(msg, tuple) and not hasattr(msg, "status"):
            replies.append(msg)  # not a status message queued before the removal
    out("REPLIES", sorted(replies))
    yield comp.close()
    return "ok"
"""
)


@pytest.mark.timeout(90)
def test_node_setup_once_and_globals_in_every_server(cluster: LocalCluster, udp_port: int) -> None:
    with run_client(HOOKS, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        client.expect(r"^NODEINFO True True 2 \S+ NodeLocation$", timeout=20)
        client.expect(r"^PROCS 2$", timeout=30)
        replies = client.expect(r"^REPLIES (.*)$", timeout=20)[1]
        assert replies == "[(42, 'tag-0', True), (42, 'tag-1', True)]"
        client.expect(r"^DONE ok$", timeout=20)
        runs = [line for line in client.output if "NODE_SETUP RAN" in line]
        assert len(runs) == 1, client.output


FAILING = (
    WAIT_FOR
    + """
def bad_node_setup(coro=None):
    yield coro.sleep(0)
    raise RuntimeError("no data for this node")


def picky_server_setup(coro=None):
    yield coro.sleep(0)
    return 0 if os.path.basename(os.getcwd()) == "proc-1" else 7


def job(coro=None):
    yield coro.sleep(0)
    return os.path.basename(os.getcwd())


def client(coro=None):
    comp = Computation([job], status_coro=Coro(status_proc), node_setup=bad_node_setup)
    out("SCHEDULE", (yield comp.schedule()))
    yield coro.sleep(3)
    out("NODES", (yield comp.nodes()), (yield comp.procs()))
    yield comp.close()
    comp = Computation([job], status_coro=Coro(status_proc), server_setup=picky_server_setup)
    out("SCHEDULE", (yield comp.schedule()))
    procs = yield from wait_procs(comp, coro, 1)
    yield coro.sleep(2)  # the other server's setup fails meanwhile
    procs = yield comp.procs()
    out("PROCS", len(procs))
    yield comp.close()
    return "ok"
"""
)


@pytest.mark.timeout(90)
def test_failing_hooks_keep_node_and_server_out(cluster: LocalCluster, udp_port: int) -> None:
    with run_client(FAILING, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        client.expect(r"node 127\.0\.0\.1 is not used: its node_setup failed", timeout=20)
        client.expect(r"no data for this node", timeout=5)
        client.expect(r"^NODES \[\] \[\]$", timeout=20)
        client.expect(r"^SCHEDULE 0$", timeout=20)
        # the server's log line and the scheduler's status travel apart: either comes first
        client.expect_all(
            r"^STATUS ProcIgnore ",
            r"server \S+ is not used: its setup failed: picky_server_setup returned 7",
            timeout=20,
        )
        client.expect(r"^PROCS 1$", timeout=20)
        client.expect(r"^DONE ok$", timeout=30)


PEERS = (
    WAIT_FOR
    + """
def listener(name, client, coro=None):
    coro.register(name)
    client.send("registered")
    sender, text = yield coro.receive(timeout=20)
    sender.send(("heard", text, str(coro.location)))


def talker(name, client, coro=None):
    peers = [str(loc) for loc in discoro.AsynCoro.instance().peers()]
    target = yield discoro.Coro.locate(name, timeout=10)
    target.send((coro, "hello from " + str(coro.location)))
    reply = yield coro.receive(timeout=10)
    client.send((reply, peers))


def client(coro=None):
    comp = Computation([listener, talker], status_coro=Coro(status_proc),
                       peers_communicate=True)
    out("SCHEDULE", (yield comp.schedule()))
    procs = yield from wait_procs(comp, coro, 2)
    name = "listener-%d" % os.getpid()
    yield comp.run_at(procs[1], listener, name, coro)
    out("LISTENER", (yield coro.receive(timeout=20)))
    yield comp.run_at(procs[0], talker, name, coro)
    (kind, text, where), peers = yield coro.receive(timeout=20)
    out("HEARD", kind, text == "hello from " + str(procs[0]), where == str(procs[1]))
    out("PEERS", str(procs[1]) in peers)
    yield comp.close()
    return "ok"
"""
)


@pytest.mark.timeout(60)
def test_servers_reach_each_other(cluster: LocalCluster, udp_port: int) -> None:
    with run_client(PEERS, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        client.expect(r"^HEARD heard True True$", timeout=30)
        client.expect(r"^PEERS True$", timeout=5)
        client.expect(r"^DONE ok$", timeout=20)
