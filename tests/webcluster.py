"""A real cluster with a status page, for the web tests.

`web_cluster()` starts a local node with one server process (a subprocess) and a child
program that runs a private ``Scheduler(http_port=...)`` plus a client whose computation runs
one long-sleeping remote coroutine. The child prints ``RUNNING <coro>`` once the coroutine
runs and ``MONITOR <coro> <exception type>`` when its status coroutine gets the
`MonitorException`; the test talks to the page over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discoro
from procs import PeerProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

PROGRAM = """
import sys, discoro

http_port, udp_port = int(sys.argv[1]), int(sys.argv[2])

def sleeper(seconds, coro=None):
    yield coro.sleep(seconds)
    return seconds

def status(client, coro=None):
    coro.set_daemon()
    while True:
        message = yield coro.receive()
        if isinstance(message, discoro.MonitorException):
            print("MONITOR", message.args[0], message.args[1][0].__name__, flush=True)
            client.send("ended")

def client(coro=None):
    computation = discoro.Computation([sleeper], status_coro=discoro.Coro(status, coro))
    if (yield computation.schedule()) != 0:
        raise RuntimeError("could not schedule")
    while not (yield computation.procs()):
        yield coro.sleep(0.05)
    rcoro = yield computation.run(sleeper, 60)
    print("RUNNING", rcoro, flush=True)
    yield coro.receive(timeout=50)
    yield computation.close()

discoro.Scheduler(node="127.0.0.1", udp_port=udp_port, http_port=http_port)
discoro.Coro(client).value(55)
print("CLIENT DONE", flush=True)
discoro.AsynCoro.instance().terminate()
"""


@dataclass
class WebCluster:
    base: str
    node_addr: str
    proc: str  # the server process's "addr:port"
    child: PeerProcess

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=5) as response:
            return json.load(response)

    def post(self, path: str, body: Any) -> Any:
        csrf = self.get("/api/session")["csrf"]  # as the page does
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-Discoro-CSRF": csrf},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)


@contextmanager
def web_cluster(udp_port: int) -> Iterator[WebCluster]:
    """See the module docstring; the secret comes from the environment (``cluster_secret``)."""
    http_port = free_port()
    with discoro.local_cluster(procs=1, udp_port=udp_port) as cluster:
        assert cluster.node_addr is not None
        proc = str(cluster.procs[min(cluster.procs)])
        with PeerProcess(PROGRAM, str(http_port), str(udp_port)) as child:
            child.expect_all(r"status page at http://127\.0\.0\.1:\d+/$", r"^RUNNING ", timeout=20)
            yield WebCluster(f"http://127.0.0.1:{http_port}", cluster.node_addr, proc, child)
