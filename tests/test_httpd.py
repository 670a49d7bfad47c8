"""`discoro.httpd.HTTPServer`, the computation's own web monitor, fed with a real computation's
status messages: a local node with two server processes, and a client program (a child
process with a private scheduler) that serves the monitor, runs three short coroutines and
one long one. The test reads the monitor through its original JSON routes, terminates the
long coroutine through ``/terminate_coros`` and sees the client's status coroutine get its
`MonitorException`, then the client closes and, once the test has read the final state,
shuts the monitor down. Both signatures are
run: the later one (the monitor relays to the user's status coroutine) and the seed's (the
user's status coroutine forwards to ``status_coro``)."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from discoro.cluster.local import LocalCluster, local_cluster
from procs import PeerProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.timeout(120)  # generous: a loaded machine is slow, not wrong

CLIENT = """
import sys
import discoro
from discoro import httpd

http_port, udp_port, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
monitor = None


def job(n, coro=None):
    yield coro.sleep(60 if n < 0 else 0.01)
    return n


def user_status(coro=None):
    coro.set_daemon()
    while True:
        msg = yield coro.receive()
        if mode == "seed":
            monitor.status_coro.send(msg)  # the seed's programs forward every message
        if isinstance(msg, discoro.MonitorException):
            print("USER MONITOR", msg.args[0], flush=True)
            client_coro.send("ended")


def client(coro=None):
    if (yield computation.schedule()) != 0:
        raise RuntimeError("could not schedule")
    while len((yield computation.procs())) < 2:
        yield coro.sleep(0.05)
    for n in range(3):
        yield computation.run(job, n)
    for _ in range(3):
        yield coro.receive(timeout=20)
    rcoro = yield computation.run(job, -1)
    print("RUNNING", rcoro, rcoro.location, flush=True)
    yield coro.receive(timeout=90)  # until the test terminates it
    print("CLOSED", (yield computation.close()), flush=True)


discoro.Scheduler(node="127.0.0.1", udp_port=udp_port)
status = discoro.Coro(user_status)
if mode == "later":
    computation = discoro.Computation([job], status_coro=status)
    monitor = httpd.HTTPServer(computation, port=http_port, poll_sec=1)
    assert computation.status_coro is not status  # the monitor's relay
else:
    monitor = httpd.HTTPServer("127.0.0.1", http_port, 1)
    computation = discoro.Computation([job], status_coro=status)
print("MONITOR AT", monitor.url, flush=True)
client_coro = discoro.Coro(client)
client_coro.value(100)
sys.stdin.readline()  # the test has read the final state: the page may go
monitor.shutdown(wait=True)
print("SHUTDOWN", flush=True)
sys.stdin.readline()
discoro.AsynCoro.instance().terminate()
"""


@dataclass
class Monitor:
    base: str
    child: PeerProcess
    rcoro: str  # the long coroutine
    location: str  # where it runs

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=30) as response:
            return json.load(response)

    def post(self, path: str, body: Any, csrf: bool = True) -> Any:
        headers = {"Content-Type": "application/json"}
        if csrf:
            headers["X-Discoro-CSRF"] = self.get("/api/session")["csrf"]
        data = json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as running:
        yield running


@contextmanager
def monitored_client(udp_port: int, mode: str) -> Iterator[Monitor]:
    """The client program of the module docstring, once its long coroutine runs."""
    http_port = free_port()
    with PeerProcess(CLIENT, str(http_port), str(udp_port), mode) as child:
        child.expect(rf"^MONITOR AT http://127\.0\.0\.1:{http_port}/$", timeout=20)
        match = child.expect(r"^RUNNING (\S+) (\S+)$", timeout=30)
        yield Monitor(f"http://127.0.0.1:{http_port}", child, match[1], match[2])


def poll(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Call ``check`` until it returns something true (then that), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s; last: {value!r}")
        time.sleep(0.1)


def the_node(monitor: Monitor, **expected: Any) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        nodes = monitor.get("/cluster_status")
        if len(nodes) != 1:
            return None
        node: dict[str, Any] = nodes[0]
        return node if all(node[key] == value for key, value in expected.items()) else None

    return check


@pytest.mark.parametrize("mode", ["later", "seed"])
def test_monitor_follows_a_computation_and_terminates_a_coroutine(
    cluster: LocalCluster, udp_port: int, mode: str
) -> None:
    procs = sorted(str(location) for location in cluster.procs.values())
    with monitored_client(udp_port, mode) as monitor:
        node = poll(the_node(monitor, coros_submitted=4, coros_done=3, coros_running=1))
        addr = cluster.node_addr
        assert node["addr"] == node["ip_addr"] == addr
        assert (node["status"], node["procs"]) == ("Initialized", 2)
        assert monitor.location in procs

        info = monitor.post("/node_info", {"host": addr})
        assert info["addr"] == addr
        assert sorted(server["location"] for server in info["servers"]) == procs
        assert sum(server["coros_done"] for server in info["servers"]) == 3
        assert monitor.post("/node_info", {"host": "127.0.0.254"}) == {}

        for route in ("/proc_info", "/server_info"):
            server = monitor.post(route, {"location": monitor.location, "limit": 10})
            assert server["status"] == "Initialized" and server["coros_running"] == 1
            [coro] = server["coros"]
            assert (coro["coro"], coro["name"], coro["args"]) == (monitor.rcoro, "job", "-1")
        assert monitor.post("/proc_info", {"location": monitor.location, "limit": 0})["coros"] == []

        # the page's own API shows the same view
        page = monitor.get("/api/status")
        assert page["totals"] == {"nodes": 1, "procs": 2, "submitted": 4, "done": 3, "running": 1}
        assert page["poll_sec"] == 1

        # changes need the CSRF token, as on the scheduler's page
        with pytest.raises(urllib.error.HTTPError) as refused:
            monitor.post("/terminate_coros", {"coro": [monitor.rcoro]}, csrf=False)
        refused.value.close()
        assert refused.value.code == 403

        terminated = monitor.post("/terminate_coros", {"coro": [monitor.rcoro, "nosuch/1@x:1"]})
        assert terminated == [monitor.rcoro]
        monitor.child.expect(rf"^USER MONITOR {monitor.rcoro}$", timeout=15)
        poll(the_node(monitor, coros_submitted=4, coros_done=4, coros_running=0))
        monitor.child.expect(r"^CLOSED ", timeout=30)
        monitor.child.write("shut down")
        monitor.child.expect(r"^SHUTDOWN$", timeout=30)
        with pytest.raises(urllib.error.URLError):
            monitor.get("/cluster_status")
        monitor.child.write("exit")
        assert monitor.child.wait(15) == 0


def test_updates_and_settings(cluster: LocalCluster, udp_port: int) -> None:
    with monitored_client(udp_port, "later") as monitor:
        poll(the_node(monitor, coros_running=1, coros_done=3))
        updates = monitor.get("/cluster_updates")
        assert [node["addr"] for node in updates] in ([cluster.node_addr], [])
        assert monitor.get("/cluster_updates") == []  # nothing changed since

        assert monitor.post("/set_poll_sec", {"timeout": 3}) == {"poll_sec": 3}
        assert monitor.get("/api/status")["poll_sec"] == 3
        answer = monitor.post("/update", {"timeout": 2, "show_coro_args": False})
        assert answer == {"poll_sec": 2, "show_coro_args": False}
        server = monitor.post("/server_info", {"location": monitor.location, "limit": 5})
        assert server["coros"][0]["args"] == ""  # arguments hidden now
        for path, body in (
            ("/set_poll_sec", {"timeout": 0}),
            ("/set_poll_sec", {"timeout": "soon"}),
            ("/update", {"show_coro_args": "yes"}),
            ("/proc_info", {"location": monitor.location, "limit": -1}),
            ("/node_info", {}),
        ):
            with pytest.raises(urllib.error.HTTPError) as bad:
                monitor.post(path, body)
            bad.value.close()
            assert bad.value.code == 400, path
        assert monitor.get("/api/status")["poll_sec"] == 2

        assert monitor.post("/terminate_coros", {"coro": monitor.rcoro}) == [monitor.rcoro]
        [updated] = poll(lambda: monitor.get("/cluster_updates"))
        assert updated["addr"] == cluster.node_addr
        monitor.child.write("shut down")
        monitor.child.expect(r"^SHUTDOWN$", timeout=40)
        monitor.child.write("exit")
        assert monitor.child.wait(15) == 0


def test_the_seed_pages_are_served(cluster: LocalCluster, udp_port: int) -> None:
    with monitored_client(udp_port, "seed") as monitor:
        for path in ("/", "/cluster.html", "/node.html", "/process.html", "/server.html"):
            with urllib.request.urlopen(monitor.base + path, timeout=5) as response:
                assert b"/static/app.js" in response.read(), path
        # another name for this machine is refused (DNS rebinding), as on the scheduler's page
        with socket.create_connection(("127.0.0.1", int(monitor.base.rsplit(":", 1)[1]))) as s:
            s.sendall(b"GET /cluster_status HTTP/1.1\r\nHost: evil.example\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 403")
        monitor.post("/terminate_coros", {"coro": [monitor.rcoro]})
        monitor.child.write("shut down")
        monitor.child.expect(r"^SHUTDOWN$", timeout=40)
        monitor.child.write("exit")
        assert monitor.child.wait(15) == 0
