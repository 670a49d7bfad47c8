"""`Peer`: what this process knows of another kernel, and the rules for its lifecycle.

Invariants:
- At most one link carries our messages to a peer (``peer.link``); if a second one
  authenticates (both sides dialled at once), both keep the one with the smaller
  ``link_id`` (the hash of its handshake, the same at both ends), so they agree whatever
  order the two finished in; the other retires and closes (`link_ops`).
- Messages for a peer with no link wait in ``queue`` (bounded by `MAX_QUEUED`) while it is
  dialled; they go out in order before anything newer.
- A peer is online from its first authenticated link until it says ``peer_closed`` or a
  lost link cannot be re-dialled; then every local monitor of a coroutine there gets a
  `MonitorException`, pending requests to it end with None, and the entry is dropped.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from discoro.core.coro import Coro
    from discoro.net.link import Link
    from discoro.net.location import Location
    from discoro.wire.messages import Message

MAX_QUEUED = 100_000
REDIAL_DELAYS = (0.0, 0.2, 0.5)


class Peer:
    __slots__ = (
        "dialing",
        "link",
        "location",
        "name",
        "online",
        "queue",
        "said_goodbye",
        "sid",
        "watchers",
    )

    def __init__(self, location: Location) -> None:
        self.location = location
        self.name = str(location)
        self.sid: str | None = None
        self.link: Link | None = None
        self.online = False
        self.said_goodbye = False
        self.queue: deque[Message] = deque()
        self.dialing: asyncio.Task[bool] | None = None
        # observed coroutine id -> [(observed handle, local monitor)]
        self.watchers: dict[int, list[tuple[Coro, Coro]]] = {}

    def __repr__(self) -> str:
        return f"{self.name}@{self.location}"

    def watch(self, observed: Coro, monitor: Coro) -> None:
        self.watchers.setdefault(observed.id, []).append((observed, monitor))

    def unwatch(self, observed_id: int, monitor: Coro | None) -> None:
        entries = self.watchers.get(observed_id)
        if not entries:
            return
        entries[:] = [entry for entry in entries if entry[1] is not monitor]
        if not entries:
            del self.watchers[observed_id]
