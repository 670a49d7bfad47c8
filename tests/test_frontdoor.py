"""The front door under floods, against a real discoro process (issue 8, DESIGN decision 4).

A child process listens on 127.0.0.1 (discovery off). The test opens thousands of raw TCP
connections to it that never authenticate, each sending one byte, and checks what an
attacker on the same host could otherwise achieve: the child's memory stays small (each
unauthenticated connection holds a few KiB and at most `MAX_UNAUTHENTICATED` wait at once),
its log does not get a line per connection, and a legitimate client still completes the
handshake while the flood goes on. With a low RLIMIT_NOFILE the child runs out of
descriptors: accepting pauses and resumes, no traceback is written, and service resumes.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import time
from typing import TYPE_CHECKING

import psutil
import pytest

from discoro.net import local_links
from discoro.net.frontdoor import MAX_PER_SOURCE, MAX_UNAUTHENTICATED
from discoro.net.link import Link
from discoro.wire import NEED_DATA, Connection, HandshakeComplete, Identity, Role, new_sid
from discoro.wire.keys import stretch
from procs import PeerProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro import AsynCoro

TIMEOUT = 10.0

VICTIM = """
import os, resource, sys
limit = int(sys.argv[2])
if limit:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
import discoro
kernel = discoro.AsynCoro(node="127.0.0.1", tcp_port=int(sys.argv[1]), name="victim",
                          discover=False)
print("READY", kernel.location, len(os.listdir("/proc/self/fd")), flush=True)
for line in sys.stdin:
    try:
        count = len(os.listdir("/proc/self/fd"))
    except OSError:  # listing needs a descriptor too, and the flood may hold them all
        count = -1
    print("FDS", count, flush=True)
"""


@contextlib.contextmanager
def victim(limit: int = 0) -> Iterator[tuple[PeerProcess, int, int]]:
    """The child process, its TCP port and its open descriptors once it listens."""
    port = free_port()
    with PeerProcess(VICTIM, str(port), str(limit)) as proc:
        match = proc.expect(r"^READY 127\.0\.0\.1:\d+ (\d+)$", timeout=TIMEOUT)
        yield proc, port, int(match.group(1))


def handshake(port: int, secret: str) -> Identity:
    """Authenticate to the process at ``port`` as a legitimate client would (or fail)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        conn = Connection(
            Role.CLIENT, stretch(secret.encode()), Identity("legit", "127.0.0.1", 1, new_sid())
        )
        conn.start()
        sock.sendall(conn.data_to_send())
        while True:
            event = conn.next_event()
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
            if isinstance(event, HandshakeComplete):
                return event.peer
            if event is NEED_DATA:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the victim closed the connection")
                conn.receive_data(data)


def flood(port: int, count: int, sources: int = 1) -> list[socket.socket]:
    """``count`` connections that each send one byte and then nothing (bounded: ``count``
    connects, each with a timeout); from ``sources`` loopback addresses in turn."""
    held: list[socket.socket] = []
    for index in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        try:
            sock.bind((f"127.0.0.{2 + index % sources}", 0))
            sock.connect(("127.0.0.1", port))
            sock.send(b"D")
        except OSError:  # the victim pushed it out already (reset): that is its right
            sock.close()
            continue
        held.append(sock)
    return held


def established(pid: int, port: int) -> int:
    """Connections the process holds open on its listening ``port``."""
    return sum(
        1
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def pushed_out(sock: socket.socket, wait: float = TIMEOUT) -> bool:
    """Whether the victim closed or reset ``sock`` (within ``wait`` seconds)."""
    sock.settimeout(wait)
    try:
        return not sock.recv(100)  # the victim never sends to an unauthenticated flooder
    except TimeoutError:
        return False
    except OSError:
        return True


def log_lines(proc: PeerProcess) -> list[str]:
    return [line for line in proc.output if " - discoro - " in line]


@pytest.mark.timeout(120)
def test_two_thousand_one_byte_connections(cluster_secret: str) -> None:
    with victim() as (proc, port, _):
        before = psutil.Process(proc.proc.pid).memory_info().rss
        held = flood(port, 2000, sources=4)
        try:
            # a legitimate client gets in while every flood connection is still open
            assert handshake(port, cluster_secret).name == "victim"
            rss = psutil.Process(proc.proc.pid).memory_info().rss
            waiting = established(proc.proc.pid, port)
        finally:
            for sock in held:
                sock.close()
        print(f"victim RSS {before / 2**20:.0f} MB -> {rss / 2**20:.0f} MB with 2,000 flooders")
        assert rss < 150 * 2**20, rss
        assert rss - before < 40 * 2**20, (before, rss)
        assert waiting <= MAX_UNAUTHENTICATED + 2, waiting  # + the legitimate one
        assert proc.proc.poll() is None
        lines = log_lines(proc)
        assert len(lines) < 60, "\n".join(lines)  # a summary, not a line per connection
        assert any("dropped unauthenticated" in line for line in lines), proc.output
        assert not [line for line in proc.output if "Traceback" in line], proc.output


def test_one_source_cannot_fill_the_door(cluster_secret: str) -> None:
    """Connections from one address beyond `MAX_PER_SOURCE` push out that address's
    oldest, never another address's."""
    with victim() as (proc, port, _):
        other = flood(port, 3, sources=1)  # from 127.0.0.2
        same = []
        try:
            for _ in range(MAX_PER_SOURCE * 4):
                sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
                sock.send(b"D")
                same.append(sock)
            assert handshake(port, cluster_secret).name == "victim"  # orders: all admitted
            mine = sum(
                1
                for c in psutil.Process(proc.proc.pid).net_connections(kind="tcp")
                if c.laddr and c.laddr.port == port and c.raddr and c.raddr.ip == "127.0.0.2"
            )
            assert mine == 3
            # the first of the 127.0.0.1 ones were pushed out: the victim reset them
            assert pushed_out(same[0])
            assert not pushed_out(other[0], wait=0.2)
        finally:
            for sock in other + same:
                sock.close()


@pytest.mark.skipif(
    not local_links.enabled(None), reason=f"{local_links.LOCAL_LINKS_ENV}=0: no Unix socket"
)
def test_same_host_unix_connections_share_only_the_overall_limit(cluster_secret: str) -> None:
    """Connections on the same-host Unix socket all carry one source label: the per-source
    limit does not push them out (a node's servers dial the scheduler at once, and a pushed
    out Unix handshake sends its dialler to TCP for good); the overall limit still does."""
    with victim() as (_, port, _):
        name = f"\0discoro/127.0.0.1:{port}"
        held = []
        try:
            for _ in range(MAX_PER_SOURCE * 3):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                held.append(sock)  # closed below even if connecting fails
                sock.settimeout(TIMEOUT)
                sock.connect(name)
                sock.send(b"D")
            assert handshake(port, cluster_secret).name == "victim"  # orders: all admitted
            assert not pushed_out(held[0], wait=0.2)
            for _ in range(MAX_UNAUTHENTICATED):  # past the overall limit: the oldest goes
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                held.append(sock)  # closed below even if connecting fails
                sock.settimeout(TIMEOUT)
                sock.connect(name)
                sock.send(b"D")
            assert pushed_out(held[0])
        finally:
            for sock in held:
                sock.close()


@pytest.mark.timeout(120)
def test_out_of_descriptors_pauses_accepting_then_resumes(cluster_secret: str) -> None:
    with victim() as (_, _, base):
        pass
    limit = base + 24  # less room than MAX_UNAUTHENTICATED: accept() hits EMFILE
    with victim(limit) as (proc, port, _):
        held = flood(port, 600, sources=8)
        try:
            proc.write("fds")
            proc.expect(r"^FDS -?\d+$", timeout=TIMEOUT)
            lines = log_lines(proc)
            assert any("cannot accept connections" in line for line in lines), proc.output
            # while flooders still hold their sockets, a legitimate client gets in
            assert handshake(port, cluster_secret).name == "victim"
        finally:
            for sock in held:
                sock.close()
        # and after the flood
        assert handshake(port, cluster_secret).name == "victim"
        assert proc.proc.poll() is None
        assert not [line for line in proc.output if "Traceback" in line], proc.output
        lines = log_lines(proc)
        assert len(lines) < 60, "\n".join(lines)


def test_refused_connections_leave_no_reference_cycles(net_kernel: AsynCoro) -> None:
    """A refused link is freed when it is lost, without waiting for the cycle collector (so
    a flood's memory comes back at once)."""
    network = net_kernel.network()
    port = network.location.port

    def links() -> int:
        return sum(1 for o in gc.get_objects() if type(o) is Link)

    gc.collect()
    gc.disable()
    try:
        before = links()
        held = flood(port, 6)  # each sends one byte: refused as "closed mid-frame" at EOF
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")  # refused as soon as it arrives
            sock.recv(100)  # its REFUSE frame, or the end
        for sock in held:
            sock.close()
        deadline = time.monotonic() + TIMEOUT
        while (network.front_door.waiting or links() > before) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for the condition, bounded by the deadline
        assert network.front_door.waiting == 0
        assert links() <= before
    finally:
        gc.enable()
