"""Files sent to a node's `Location` land in the node directory; setup hooks are bounded
(later-versions 3.1, 3.3, 3.4, D8, D9), against a real node.

A `discoro_client9_node`-style program sends a per-node data file to
``info.avail_info.location`` on ``NodeDiscovered``, enables the node with the file's name,
``node_setup`` opens it by name (its working directory is the node directory) and the jobs on
every server of the node read it as ``../name``. A file sent to a server's `Location` stays
in that server's working directory. A setup hook that never ends is abandoned after
``SETUP_TIMEOUT`` seconds and its node or server is not used, with one line saying why.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import run_client
from discoro.net.location import Location, NodeLocation

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro.cluster.local import LocalCluster


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


def test_node_location_is_the_same_peer_and_pickles_as_itself() -> None:
    server = Location("127.0.0.1", 51400)
    node = NodeLocation.of(server)
    assert node == server and server == node and hash(node) == hash(server)
    assert str(node) == str(server) == "127.0.0.1:51400"
    back = pickle.loads(pickle.dumps(node))
    assert type(back) is NodeLocation and back == server
    assert type(pickle.loads(pickle.dumps(server))) is Location


WAIT_FOR = """
def wait_for(coro, code, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        msg = yield coro.receive(timeout=1)
        if getattr(msg, "status", None) == code:
            return msg
    return None


def wait_procs(comp, coro, count, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        procs = yield comp.procs()
        if len(procs) >= count:
            return procs
        yield coro.sleep(0.05)
    return (yield comp.procs())
"""

NODE_FILE = (
    WAIT_FOR
    + """
def node_setup(data_file, coro=None):
    global NODE_DATA, SETUP_CWD
    SETUP_CWD = os.getcwd()
    with open(data_file) as stream:           # by name: cwd is the node directory
        NODE_DATA = stream.read().strip()
    yield coro.sleep(0)
    return 0


def job(data_file, coro=None):
    yield coro.sleep(0)
    with open(os.path.join("..", data_file)) as stream:
        seen = stream.read().strip()
    here = os.getcwd()
    return (seen, NODE_DATA, SETUP_CWD == os.path.dirname(here), os.path.basename(here))


def peek(name, coro=None):
    yield coro.sleep(0)
    return (os.path.exists(name), os.path.exists(os.path.join("..", name)))


def client(coro=None):
    LISTENERS.append(coro)
    comp = Computation([job, peek], status_coro=Coro(status_proc), node_setup=node_setup,
                       disable_nodes=True)
    out("SCHEDULE", (yield comp.schedule()))
    found = yield from wait_for(coro, discoro.Scheduler.NodeDiscovered)
    info = found.info
    location = info.avail_info.location
    out("LOCATION", type(location).__name__)
    data_file = "node-%s.dat" % info.addr
    with open(data_file, "w") as stream:
        stream.write("data for %s\\n" % info.addr)
    kernel = discoro.AsynCoro.instance()
    out("SENT", (yield kernel.send_file(location, data_file, timeout=10)))
    yield comp.enable_node(info.addr, data_file)
    procs = yield from wait_procs(comp, coro, 2)
    LISTENERS.remove(coro)
    out("PROCS", len(procs))
    for proc in procs:
        seen = yield comp.run_result_at(proc, job, data_file)
        out("JOB", seen[0] == "data for %s" % info.addr, seen[1] == seen[0], seen[2], seen[3])
    with open("server.dat", "w") as stream:
        stream.write("for one server\\n")
    out("SENT", (yield kernel.send_file(procs[0], "server.dat", timeout=10)))
    out("PEEK0", (yield comp.run_result_at(procs[0], peek, "server.dat")))
    out("PEEK1", (yield comp.run_result_at(procs[1], peek, "server.dat")))
    yield comp.close()
    return "ok"
"""
)


@pytest.mark.timeout(120)
def test_file_sent_to_the_node_location_is_in_the_node_directory(
    cluster: LocalCluster, udp_port: int, tmp_path: Path
) -> None:
    node_dir = Path(cluster.dest_path) / "discoro"
    with run_client(NODE_FILE, udp_port, cwd=str(tmp_path)) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        client.expect(r"^LOCATION NodeLocation$", timeout=20)
        client.expect(r"^SENT 0$", timeout=20)
        client.expect(r"^PROCS 2$", timeout=40)
        jobs = [client.expect(r"^JOB (.*)$", timeout=20)[1] for _ in range(2)]
        assert sorted(jobs) == ["True True True proc-1", "True True True proc-2"], jobs
        client.expect(r"^SENT 0$", timeout=20)
        # a server's Location: in that server's working directory only
        client.expect(r"^PEEK0 \(True, False\)$", timeout=20)
        client.expect(r"^PEEK1 \(False, False\)$", timeout=20)
        client.expect(r"^DONE ok$", timeout=30)
    # the close removes the file sent to the node directory (the servers close after the
    # scheduler answered the client: wait for it)
    deadline = time.monotonic() + 30
    while list(node_dir.glob("node-*.dat")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list(node_dir.glob("node-*.dat")), sorted(p.name for p in node_dir.iterdir())


HUNG = (
    WAIT_FOR
    + """
import discoro.cluster.setup_options
discoro.cluster.setup_options.SETUP_TIMEOUT = 3


def hung_node_setup(coro=None):
    yield coro.sleep(1000)
    return 0


def hung_server_setup(coro=None):
    if os.path.basename(os.getcwd()) == "proc-1":
        yield coro.sleep(1000)
    yield coro.sleep(0)
    return 0


def job(coro=None):
    yield coro.sleep(0)
    return os.path.basename(os.getcwd())


def client(coro=None):
    comp = Computation([job], status_coro=Coro(status_proc), node_setup=hung_node_setup)
    out("SCHEDULE", (yield comp.schedule()))
    yield coro.sleep(12)  # the node_setup is abandoned after 3 s (no status tells of it)
    out("NODES", (yield comp.nodes()), (yield comp.procs()))
    yield comp.close()
    LISTENERS.append(coro)
    comp = Computation([job], status_coro=Coro(status_proc), server_setup=hung_server_setup)
    out("SCHEDULE", (yield comp.schedule()))
    ignored = yield from wait_for(coro, discoro.Scheduler.ProcIgnore, 60)
    LISTENERS.remove(coro)
    procs = yield from wait_procs(comp, coro, 1)
    out("RAN", (yield comp.run_result_at(procs[0], job)), ignored is not None)
    out("PROCS", len((yield comp.procs())))
    yield comp.close()
    return "ok"
"""
)


@pytest.mark.timeout(120)
def test_a_hung_setup_hook_is_abandoned(cluster: LocalCluster, udp_port: int) -> None:
    with run_client(HUNG, udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        client.expect(
            r"node 127\.0\.0\.1 is not used: its node_setup failed: "
            r"hung_node_setup did not finish within 3 s",
            timeout=30,
        )
        client.expect(r"^NODES \[\] \[\]$", timeout=20)
        client.expect(r"^SCHEDULE 0$", timeout=20)
        client.expect_all(
            r"^RAN proc-2 True$",
            r"^STATUS ProcIgnore ",
            r"server \S+ is not used: its setup failed: "
            r"hung_server_setup did not finish within 3 s",
            timeout=40,
        )
        client.expect(r"^PROCS 1$", timeout=20)
        client.expect(r"^DONE ok$", timeout=30)
