"""A server process keeps announcing itself after its start (with backoff), so a scheduler
that lost it in a partition finds it again; a plain process stays quiet after its start
burst. Real processes on loopback; a raw socket on the discovery port counts the datagrams."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from typing import TYPE_CHECKING

import pytest

import discoro
from discoro.errors import ProtocolError
from discoro.net.discovery import ANNOUNCE_DELAYS
from discoro.wire.discovery import decode_announcement, discovery_keys
from procs import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator


class Counter:
    """Shares the discovery port; counts the cluster's announcements per announcer name."""

    def __init__(self, port: int, secret: str) -> None:
        self.keys = discovery_keys(secret.encode())
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.sock.bind(("", port))
        self.sock.settimeout(0.1)
        self.closing = threading.Event()
        self.names: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self.closing.is_set():
            with contextlib.suppress(TimeoutError, ProtocolError):
                data = self.sock.recv(2048)
                self.names.put(decode_announcement(data, self.keys, time.time()).name)

    def wait_for(self, count: int, timeout: float) -> dict[str, int]:
        """Wait until one announcer was heard ``count`` times; the counts per name."""
        heard: dict[str, int] = {}
        deadline = time.monotonic() + timeout
        while not heard or max(heard.values()) < count:
            try:
                name = self.names.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"heard {heard}, no one {count} times") from None
            heard[name] = heard.get(name, 0) + 1
        return heard

    def close(self) -> None:
        self.closing.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def port() -> int:
    return free_port(socket.SOCK_DGRAM)


@pytest.fixture
def counter(port: int, cluster_secret: str) -> Iterator[Counter]:
    listener = Counter(port, cluster_secret)
    try:
        yield listener
    finally:
        listener.close()


@pytest.mark.timeout(60)
def test_a_server_process_keeps_announcing(
    counter: Counter, port: int, cluster_secret: str
) -> None:
    with discoro.local_cluster(procs=1, udp_port=port, secret=cluster_secret):
        # the start burst, then re-announcements 1, 2 and 4 s apart (one more than the
        # burst alone would ever send, twice over)
        heard = counter.wait_for(len(ANNOUNCE_DELAYS) + 3, timeout=30)
    assert len(heard) == 1, heard  # the one server process (the node program has no kernel)
