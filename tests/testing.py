"""Helpers for deterministic tests, in the manner of ``trio.testing``.

- `wait_all_blocked` / `all_blocked`: wait until every coroutine of the kernel (but the
  caller) is blocked: suspended on something that has not happened yet (a receive, a lock, a
  sleep, a thread, I/O). "The other coroutine must have reached its wait by now" becomes a
  fact instead of a guess about timing.
- `ManualClock`: a monotonic clock that moves only when a test says so, for the shells that
  take a ``clock`` (`discoro.cluster.server.Server`, `discoro.cluster.scheduler.Scheduler`).
- `WirePair`: the two ends of a sans-I/O `discoro.wire.Connection` wired to each other in
  memory, so protocol tests need no sockets.

Invariant: nothing here sleeps for synchronisation; every wait ends on an event or a
caller's timeout.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from discoro.core.kernel import AsynCoro
from discoro.wire import (
    NEED_DATA,
    Connection,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    Identity,
    Message,
    MessageReceived,
    Role,
)

if TYPE_CHECKING:
    from typing import Any

SETTLE_TURNS = 3  # loop turns everything must stay blocked: wake-ups under way land first


async def wait_all_blocked(kernel: AsynCoro | None = None, settle: int = SETTLE_TURNS) -> None:
    """Return once every coroutine of ``kernel`` except the caller has been blocked for
    ``settle`` loop turns in a row. Await it (or yield it) inside a coroutine, or run it on
    the loop; from a thread use `all_blocked`. It waits as long as it takes: a coroutine
    that never blocks makes it run into the test's timeout, which is the right failure."""
    kernel = kernel or AsynCoro.instance()
    me = AsynCoro.cur_coro()
    quiet = 0
    while quiet < settle:
        await asyncio.sleep(0)
        quiet = 0 if kernel._runnable(me) else quiet + 1


def all_blocked(kernel: AsynCoro | None = None, timeout: float = 10.0) -> None:
    """`wait_all_blocked` from a thread other than the loop's (the test's main thread);
    raises TimeoutError after ``timeout`` seconds."""
    kernel = kernel or AsynCoro.instance()
    kernel.run_sync(wait_all_blocked(kernel), timeout)


class ManualClock:
    """A monotonic clock (call it for the time) that moves only by `advance`; thread-safe."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        with self._lock:
            self._now += seconds


SECRET = b"wire pair secret"
CLIENT_ID = Identity("client", "127.0.0.1", 9001, "c1")
SERVER_ID = Identity("server", "127.0.0.1", 9002, "s1")


class WirePair:
    """A client and a server `Connection` talking to each other in memory.

    `pump` carries whatever each end has to send to the other until both are quiet, and
    returns the events each end saw; `handshake` does the whole handshake; `send` frames a
    message on one end and hands it to the other, returning the other end's events.
    """

    def __init__(
        self,
        secret: bytes = SECRET,
        client_id: Identity = CLIENT_ID,
        server_id: Identity = SERVER_ID,
        server_secret: bytes | None = None,
        **options: Any,
    ) -> None:
        self.client = Connection(Role.CLIENT, secret, client_id, **options)
        self.server = Connection(Role.SERVER, server_secret or secret, server_id, **options)

    def other(self, end: Connection) -> Connection:
        return self.server if end is self.client else self.client

    def pump(self) -> tuple[list[Event], list[Event]]:
        """Move bytes both ways until neither end has more: (client events, server events).
        A ProtocolError of either end propagates (after which `data_to_send` may still hold
        its REFUSE frame)."""
        seen: dict[int, list[Event]] = {id(self.client): [], id(self.server): []}
        moved = True
        while moved:
            moved = False
            for sender in (self.client, self.server):
                data = sender.data_to_send()
                if data:
                    moved = True
                    receiver = self.other(sender)
                    seen[id(receiver)] += events_of(receiver, data)
        return seen[id(self.client)], seen[id(self.server)]

    def handshake(self) -> WirePair:
        """Start and complete the handshake; both ends are then authenticated."""
        self.client.start()
        client_events, server_events = self.pump()
        assert client_events == [HandshakeComplete(self.server.identity)], client_events
        assert server_events == [HandshakeComplete(self.client.identity)], server_events
        return self

    def send(self, sender: Connection, *messages: Message) -> list[Message]:
        """Frame ``messages`` on ``sender``; the messages the other end receives."""
        data = b"".join(sender.send(message) for message in messages)
        events = events_of(self.other(sender), data)
        assert all(isinstance(event, MessageReceived) for event in events), events
        return [event.message for event in events if isinstance(event, MessageReceived)]


def events_of(conn: Connection, data: bytes = b"", eof: bool = False) -> list[Event]:
    """Feed ``data`` (then EOF if ``eof``) to ``conn``; every event it yields, up to NEED_DATA
    or the close of the stream."""
    if data:
        conn.receive_data(data)
    if eof:
        conn.receive_data(b"")
    events: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
        if isinstance(event, ConnectionClosed):
            break
    return events
