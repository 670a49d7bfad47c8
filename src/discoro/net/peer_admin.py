"""Peers by hand, the later versions' calls (later-versions 7, D7): list the peers, close one,
broadcast again, ignore announcements.

A mixin of `Network` (kept apart so network.py stays near its size). Rules: a closed peer is
told ``peer_closed`` first, so it does not re-dial us; closing waits for the link to go at
most ``timeout`` seconds; ignoring peers only stops discovery from dialling the processes
that announce themselves (explicit `peer` calls and incoming connections still work).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from discoro.net.location import Location
from discoro.wire.messages import Message

if TYPE_CHECKING:
    from discoro.net.discovery import Discovery
    from discoro.net.peers import Peer


class PeerAdmin:
    peers: dict[Location, Peer]
    discovery: Discovery | None
    udp_port: int
    ignoring_peers: bool = False

    async def started(self) -> None:  # provided by Network
        raise NotImplementedError

    def peer_locations(self) -> list[Location]:
        """Where the connected peers are (each once)."""
        seen: dict[int, Location] = {}
        for peer in self.peers.values():
            if peer.online and id(peer) not in seen:
                seen[id(peer)] = peer.location
        return list(seen.values())

    async def close_peer(self, location: object, timeout: float | None = None) -> int:
        """Say goodbye to the peer at ``location`` and drop its connection; 0, or -1 if
        there is no such peer."""
        await self.started()
        peer = self.peers.get(location) if isinstance(location, Location) else None
        if peer is None:
            return -1
        peer.said_goodbye = True
        link = peer.link
        if link is None:
            if peer.dialing is not None:
                peer.dialing.cancel()
            return 0
        link.send(Message("peer_closed"))
        link.close()
        await asyncio.wait([link.lost], timeout=timeout)
        return 0

    async def discover_peers(self, port: int | None = None) -> int:
        """Announce this process again (to ``port``, default the discovery port); 0, or -1
        when discovery is off."""
        await self.started()
        if self.discovery is None:
            return -1
        return self.discovery.announce_once(port or self.udp_port)

    def ignore_peers(self, flag: bool) -> None:
        """Whether discovery ignores the processes that announce themselves."""
        self.ignoring_peers = bool(flag)
