"""Shared test fixtures: the in-process kernel is ended once the whole session is done."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import pytest

from discoro import AsynCoro
from discoro.net.runtime import network_of

if TYPE_CHECKING:
    from collections.abc import Iterator

# A shell ignores SIGINT in a command it starts in the background (``cmd &``), and child
# processes inherit an ignored signal: the tests that interrupt a client with SIGINT would
# then test nothing. A handler (not an ignore) is reset to the default in every child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _end_kernel_after_session(cluster_secret: str, udp_port: int) -> Iterator[None]:
    # Whatever starts networking in this process does it on loopback, with the session's
    # secret and discovery port: never on a real interface.
    kernel = AsynCoro.instance()
    kernel.options.update(node="127.0.0.1", secret=cluster_secret, udp_port=udp_port)
    yield
    kernel = AsynCoro._existing_instance()  # type: ignore[attr-defined]
    if kernel is not None:
        kernel.terminate()


@pytest.fixture(scope="session")
def cluster_secret() -> str:
    """One secret for the whole test session, exported so child processes share it."""
    import os
    import secrets

    value = "test-" + secrets.token_hex(8)
    os.environ["DISCORO_SECRET"] = value
    return value


@pytest.fixture(scope="session")
def udp_port() -> int:
    """A discovery port private to this test session (so concurrent runs never mix)."""
    import socket

    from procs import free_port

    return free_port(socket.SOCK_DGRAM)


@pytest.fixture
def net_kernel(cluster_secret: str, udp_port: int) -> AsynCoro:
    """The in-process kernel with networking started on loopback (once per session)."""
    kernel = AsynCoro.instance()
    network = network_of(kernel)  # the Network itself, also behind a transport thread
    assert network.node == "127.0.0.1" and network.secret == cluster_secret.encode()
    return kernel
