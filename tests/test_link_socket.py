"""Link sockets keep few bytes ahead of a small message in the kernel (issue 9,
`discoro.net.link_socket`): ``TCP_NOTSENT_LOWAT`` on every link socket, and a capped receive
buffer on a near link only (a far one keeps the kernel's autotuning). Checked on real sockets:
loopback pairs here, and both ends of a link between this process and a child whose network
runs on a transport thread (as a server process's does)."""

from __future__ import annotations

import socket
import sys
from typing import TYPE_CHECKING, Any

import pytest

from discoro import AsynCoro, Coro
from discoro.net import link_socket
from discoro.net.runtime import network_of
from netpeers import run, start_peer

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(sys.platform != "linux", reason="Linux socket options"),
]


def options(sock: Any) -> tuple[int, int]:
    """(``TCP_NOTSENT_LOWAT``, ``SO_RCVBUF``) of ``sock``."""
    lowat = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT)
    return lowat, sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


@pytest.fixture
def connected() -> Iterator[socket.socket]:
    """The dialling end of a fresh loopback TCP connection."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client = socket.create_connection(server.getsockname(), timeout=10)
        accepted, _ = server.accept()
        with client, accepted:
            yield client


def test_a_near_link_gets_a_small_unsent_mark_and_a_capped_receive_buffer(
    connected: socket.socket,
) -> None:
    rtt = link_socket.round_trip(connected)
    assert rtt is not None and 0 < rtt < link_socket.NEAR_RTT  # loopback
    link_socket.tune(connected)
    assert connected.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    # Linux doubles SO_RCVBUF for its bookkeeping
    assert options(connected) == (link_socket.NOTSENT_LOWAT, 2 * link_socket.RECEIVE_BUFFER)


def test_a_far_link_keeps_the_kernels_receive_autotuning(
    connected: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(link_socket, "NEAR_RTT", 0.0)  # every link is far
    before = connected.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    link_socket.tune(connected)
    assert options(connected) == (link_socket.NOTSENT_LOWAT, before)


def test_knobs_set_to_none_leave_the_kernels_defaults(
    connected: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(link_socket, "NOTSENT_LOWAT", None)
    monkeypatch.setattr(link_socket, "RECEIVE_BUFFER", None)
    before = options(connected)
    link_socket.tune(connected)
    assert options(connected) == before


def test_a_socket_that_is_not_tcp_is_left_alone() -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        link_socket.tune(sock)  # no TCP options to set: no error


PROGRAM = """
    from discoro.net.link_socket import NOTSENT_LOWAT, RECEIVE_BUFFER
    from discoro.net.runtime import network_of, network_thread
    import socket

    def report(coro=None):
        client = yield coro.receive()
        link = network_of(kernel).peers[client.location].link
        sock = link.transport.get_extra_info("socket")
        client.send((
            network_thread(kernel) is not None,
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT),
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
        ))

    assert Coro(report).register("report") == 0
"""


def test_both_ends_of_a_link_are_tuned_one_on_a_transport_thread(net_kernel: AsynCoro) -> None:
    expected = (link_socket.NOTSENT_LOWAT, 2 * link_socket.RECEIVE_BUFFER)
    # the child on TCP: a same-host link would be a Unix socket (net/local_links.py), untuned
    env = {"DISCORO_NET_THREAD": "1", "DISCORO_LOCAL_LINKS": "0"}
    with start_peer(net_kernel, PROGRAM, env=env) as child:

        def ask(coro: Any = None) -> Any:
            reporter = yield Coro.locate("report", child.location, timeout=10)
            reporter.send(coro)
            return (yield coro.receive(timeout=20))

        threaded, *accepted = run(ask, timeout=40)  # the child accepted the link
        link = network_of(net_kernel).peers[child.location].link
        dialled = options(link.transport.get_extra_info("socket"))  # this process dialled it
    assert threaded, "the child's network should run on a transport thread"
    assert tuple(accepted) == expected
    assert dialled == expected
