"""Network test harness: a command-driven peer program, and hosts in Linux network namespaces.

`PEER_PROGRAM` is a discoro process for tests (argv: node, udp_port, name, options as JSON).
It prints ``READY name location`` once it listens, ``STATUS Online|Offline name location``
for every `PeerStatus` it gets, and it runs one command per stdin line:

- ``PEER host udp_port [broadcast]``: introduce itself by UDP; prints ``PEER result``;
- ``LOCATE name``: locate a coroutine at the peers; prints ``LOCATED name True|False``;
- ``MONITOR name``: locate and monitor a coroutine, then print ``MONITOR <message type>``
  when the monitor gets something (after ``MONITORING name``).

Every process registers a coroutine ``service-<name>`` that answers ``(client, request)``.

`Topology` builds a small switched LAN entirely inside namespaces it creates: one "switch"
namespace holding a bridge, and ``size`` host namespaces, each cabled to the bridge by a veth
pair (``eth0`` in the host, ``p<i>`` on the switch) on a private /24 subnet. Nothing is added
to the namespace the tests run in, so it works the same inside ``unshare -n`` and cannot
collide with the machine's networks. Names carry the pid; `Topology.destroy` (also run on
any failure while building, and by the context manager) stops every process started in it
and deletes the namespaces, which deletes their interfaces; leftovers of dead test runs are
swept when a new topology is built.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
from typing import Any

from procs import PeerProcess

# `discoronode` as a program a host of a `Topology` runs (argv: its options).
NODE_PROGRAM = """
import sys
from discoro.cli.node import main
sys.exit(main())
"""

PEER_PROGRAM = """
import json, sys
from discoro import AsynCoro, Coro, PeerStatus

node, udp_port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
options = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
kernel = AsynCoro(node=node, udp_port=udp_port, name=name, **options)
print("READY", name, kernel.location, flush=True)


def watch_peers(coro=None):
    kernel.peer_status(coro)
    while True:
        status = yield coro.receive()
        state = "Online" if status.status == PeerStatus.Online else "Offline"
        print("STATUS", state, status.name, status.location, flush=True)


def service(coro=None):
    coro.register("service-" + name)
    while True:
        client, request = yield coro.receive()
        client.send((name, request))


def command(line, coro=None):
    verb, *words = line.split()
    if verb == "PEER":
        result = yield kernel.peer(words[0], int(words[1]), broadcast=len(words) > 2)
        print("PEER", result, flush=True)
    elif verb == "LOCATE":
        found = yield Coro.locate(words[0], timeout=5)
        print("LOCATED", words[0], found is not None, flush=True)
    elif verb == "MONITOR":
        observed = yield Coro.locate(words[0], timeout=5)
        result = yield coro.monitor(observed)
        print("MONITORING", words[0], result, flush=True)
        message = yield coro.receive(timeout=30)
        print("MONITOR", type(message).__name__, flush=True)


Coro(watch_peers)
Coro(service)
for line in sys.stdin:
    if line.strip():
        Coro(command, line.strip())
"""

PREFIX = "dsct"
_serial = itertools.count()


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip args``; CalledProcessError (with ip's message) if it fails and ``check``."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and result.returncode != 0:
        raise subprocess.CalledProcessError(
            result.returncode, result.args, result.stdout, result.stderr
        )
    return result


def netns_unavailable() -> str | None:
    """Why namespace tests cannot run here (None if they can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespace tests need root"
    if shutil.which("ip") is None:
        return "network namespace tests need the `ip` command (iproute2)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    try:
        ip("netns", "add", probe)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`ip netns add` does not work here: {getattr(exc, 'stderr', '') or exc}"
    ip("netns", "del", probe, check=False)
    return None


def _sweep_stale() -> None:
    """Delete namespaces left by test runs whose process is gone."""
    listing = ip("netns", "list", check=False).stdout
    for name in re.findall(rf"^({PREFIX}(\d+)\S*)", listing, re.MULTILINE):
        full, pid = name
        if not os.path.exists(f"/proc/{pid}"):
            ip("netns", "del", full, check=False)


class Topology:
    """Hosts (network namespaces) on one bridge; see the module docstring."""

    def __init__(self, size: int = 3) -> None:
        serial = next(_serial)
        tag = f"{PREFIX}{os.getpid()}x{serial}"
        octet = (os.getpid() + serial) % 250 + 1
        self.switch = f"{tag}-sw"
        self.hosts = [f"{tag}-h{i}" for i in range(size)]
        self.addresses = [f"10.213.{octet}.{i + 1}" for i in range(size)]
        self.broadcast = f"10.213.{octet}.255"
        self.processes: list[PeerProcess] = []
        self._created: list[str] = []

    def create(self) -> Topology:
        _sweep_stale()
        try:
            self._add_namespace(self.switch)
            ip("-n", self.switch, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
            ip("-n", self.switch, "link", "set", "br0", "up")
            for i, (host, address) in enumerate(zip(self.hosts, self.addresses, strict=True)):
                self._add_namespace(host)
                port = f"p{i}"
                ip(
                    "-n", self.switch, "link", "add", port, "type", "veth",
                    "peer", "name", "eth0", "netns", host,
                )  # fmt: skip
                ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
                ip("-n", host, "link", "set", "lo", "up")
                ip("-n", host, "addr", "add", f"{address}/24", "brd", "+", "dev", "eth0")
                ip("-n", host, "link", "set", "eth0", "up")
        except BaseException:
            self.destroy()
            raise
        return self

    def _add_namespace(self, name: str) -> None:
        ip("netns", "add", name)
        self._created.append(name)

    def spawn(self, index: int, program: str, *args: str, **kwargs: Any) -> PeerProcess:
        """Run ``program`` in host ``index``; the process is stopped by `destroy`."""
        process = PeerProcess(
            program, *args, prefix=["ip", "netns", "exec", self.hosts[index]], **kwargs
        )
        self.processes.append(process)
        return process

    def unplug(self, index: int) -> None:
        """Pull host ``index``'s cable out of the switch."""
        ip("-n", self.switch, "link", "set", f"p{index}", "down")

    def plug(self, index: int) -> None:
        ip("-n", self.switch, "link", "set", f"p{index}", "up")

    def destroy(self) -> None:
        for process in self.processes:
            process.stop()
        self.processes.clear()
        for name in reversed(self._created):
            ip("netns", "del", name, check=False)
        self._created.clear()

    def __enter__(self) -> Topology:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
