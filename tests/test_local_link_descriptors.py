"""Failed same-host (Unix) dials close their descriptors exactly once (`discoro.net.handover`).

Unix handshakes fail in a loop against listeners in this process that hold the abstract
name of a location nobody serves over TCP (so each dial ends, after its TCP fallback is
refused, with no link): one accepts and closes, one never answers until the handshake
deadline, one sends garbage. After a forced garbage collection the process's descriptors
(``/proc/self/fd``) are those it had before, and a live Unix link to a child process, made
before the loop, still carries messages: no failed dial closed its descriptor under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import sys
import threading
import warnings
from typing import TYPE_CHECKING, Any

import pytest

from discoro import AsynCoro, Coro
from discoro.net import dialling, local_links
from discoro.net import link as link_module
from discoro.net.location import Location
from discoro.net.runtime import network_of
from netpeers import run, start_peer
from procs import free_port

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from discoro.net.network import Network

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="abstract Unix sockets")

ROUNDS = 8
TIMEOUT = 30.0

ECHO = """
def echo(coro=None):
    coro.register("echo")
    while True:
        sender, n = yield coro.receive()
        sender.send(n)

Coro(echo)
"""


def descriptors() -> dict[str, str]:
    """This process's open descriptors: number -> what it is."""
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the directory's own descriptor, closed by now
            continue
    return found


class Listener:
    """Holds the abstract name of ``location`` and treats one dialler as ``behaviour``
    says; everything it opened is closed by `close`."""

    def __init__(self, location: Location, behaviour: str) -> None:
        self.behaviour = behaviour
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(local_links.abstract_name(location))
        self.sock.listen(4)
        self.sock.settimeout(TIMEOUT)
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        if self.behaviour == "closes":
            conn.close()
            return
        self.held.append(conn)
        if self.behaviour == "garbage":
            conn.sendall(os.urandom(4096))

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept() if nobody came
        self.thread.join(TIMEOUT)
        self.sock.close()
        for conn in self.held:
            conn.close()


def is_open(sock: socket.socket) -> bool:
    """Whether ``sock``'s descriptor is still open (nobody closed its number under it)."""
    try:
        os.fstat(sock.fileno())
    except OSError:
        return False
    return True


def fail_dials(network: Network) -> None:
    """One Unix dial per kind of failing listener: each must end without a link."""
    for behaviour in ("closes", "silent", "garbage"):
        location = Location("127.0.0.1", free_port())  # no TCP listener there
        listener = Listener(location, behaviour)
        try:
            assert not on_loop(network, dialling.dial(network, location))
        finally:
            listener.close()
            network.local_links.tcp_only.discard(location)  # try Unix again next time


def on_loop(network: Network, coro: Coroutine[Any, Any, bool]) -> bool:
    return asyncio.run_coroutine_threadsafe(coro, network.loop).result(TIMEOUT)


@pytest.mark.timeout(180)
def test_failed_unix_handshakes_close_their_descriptors_and_none_of_a_live_link(
    net_kernel: AsynCoro, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = network_of(net_kernel)
    if not network.local_links.on:
        pytest.skip("local links are off (DISCORO_LOCAL_LINKS=0)")
    with start_peer(net_kernel, ECHO) as child:

        def ping(n: int, coro: Any = None) -> Any:
            echo = yield Coro.locate("echo", child.location, timeout=10)
            echo.send((coro, n))
            return (yield coro.receive(timeout=10))

        assert run(ping, 0) == 0
        live = network.peers[child.location].link
        assert live is not None and live.transport is not None
        assert live.transport.get_extra_info("socket").family == socket.AF_UNIX
        monkeypatch.setattr(link_module, "HANDSHAKE_TIMEOUT", 0.3)
        gc.collect()
        baseline = descriptors()
        broken: list[str] = []
        gc.disable()  # whatever a failed dial left behind waits for the collect below
        try:
            with warnings.catch_warnings(record=True) as warned:
                warnings.simplefilter("always", ResourceWarning)
                for n in range(1, ROUNDS + 1):
                    fail_dials(network)
                    # new descriptors take the lowest free numbers: those the dials freed
                    probes = [sock for _ in range(3) for sock in socket.socketpair()]
                    gc.collect()  # must close nothing: the failed dials closed their own
                    broken += [str(sock) for sock in probes if not is_open(sock)]
                    for sock in probes:
                        with contextlib.suppress(OSError):  # EBADF if closed under it
                            sock.close()
                    assert run(ping, n) == n  # the live link keeps working meanwhile
        finally:
            gc.enable()
        assert not broken, "a descriptor was closed under its owner"
        unclosed = [str(w.message) for w in warned if issubclass(w.category, ResourceWarning)]
        assert not unclosed, "the garbage collector closed descriptors"
        gc.collect()
        after = descriptors()
        opened = sorted(set(after.items()) - set(baseline.items()))
        closed = sorted(set(baseline.items()) - set(after.items()))
        assert after == baseline, {"left open": opened, "closed": closed}
        assert network.peers[child.location].link is live
        assert not live.transport.is_closing()
        assert run(ping, ROUNDS + 1) == ROUNDS + 1
