"""Finding things by name across peers: coroutines, channels, RCIs and peer kernels.

``locate`` with a location asks only that peer. Without one it looks here first, then asks
every online peer and every peer that comes online until an answer arrives or the timeout
passes (None = wait until found). The first positive answer wins. A peer that has no such
name yet is asked again, backing off from `ASK_AGAIN_FIRST` to `ASK_AGAIN_MAX` seconds, while
the search lasts: a process is online (linked) a moment before its programs register their
names, so one "no" is not the final answer.
"""

from __future__ import annotations

import asyncio
import pickle
from typing import TYPE_CHECKING, Any

from discoro.core.log import logger

if TYPE_CHECKING:
    from discoro.net.network import Network
    from discoro.net.peers import Peer

KINDS = ("coro", "channel", "rci", "peer")
ASK_AGAIN_FIRST = 0.05  # seconds before a peer without the name is asked again; doubles
ASK_AGAIN_MAX = 1.0


class Lookups:
    def __init__(self, net: Network) -> None:
        self.net = net
        self.pending: list[tuple[str, str, asyncio.Future[Any]]] = []
        net.peer_watchers.append(self._peer_online)

    def find_local(self, kind: str, name: str) -> Any:
        kernel = self.net.kernel
        if kind == "coro":
            return kernel.registered(name)
        if kind == "channel":
            return kernel.local_channel(name, registered=True)
        if kind == "rci":
            return kernel.rcis.get(name)
        if kind == "peer":
            return self.net.location if name == self.net.name else None
        return None

    async def locate(self, kind: str, name: str, location: Any, timeout: float | None) -> Any:
        if kind not in KINDS:
            raise ValueError(f"cannot locate a {kind!r}")
        net = self.net
        if location is not None:
            if location == net.location:
                return self.find_local(kind, name)
            reply = await net.request(location, "locate", {"k": kind, "n": name}, None, timeout)
            return self._decode(reply)
        found = self.find_local(kind, name)
        if found is not None:
            return found
        future: asyncio.Future[Any] = net.loop.create_future()
        entry = (kind, name, future)
        self.pending.append(entry)
        for peer in list(net.peers.values()):
            if peer.online:
                self._ask(peer, entry)
        timer = None if timeout is None else net.loop.call_later(timeout, _expire, future)
        try:
            return await future
        finally:
            self.pending.remove(entry)
            if timer is not None:
                timer.cancel()

    def _peer_online(self, peer: Peer) -> None:
        for entry in list(self.pending):
            self._ask(peer, entry)

    def _ask(self, peer: Peer, entry: tuple[str, str, asyncio.Future[Any]]) -> None:
        kind, name, future = entry

        async def ask() -> None:
            delay = ASK_AGAIN_FIRST
            while not future.done():
                reply = await self.net.request(peer.location, "locate", {"k": kind, "n": name})
                found = self._decode(reply)
                if found is not None:
                    if not future.done():
                        future.set_result(found)
                    return
                if not peer.online:
                    return  # asked again when it comes back online
                await asyncio.sleep(delay)  # the name may be registered a moment later
                delay = min(delay * 2, ASK_AGAIN_MAX)

        self.net.loop.create_task(ask())

    @staticmethod
    def _decode(reply: Any) -> Any:
        if reply is None or reply.fields.get("r") != 0:
            return None
        try:
            return pickle.loads(reply.payload or b"")
        except Exception as exc:
            logger.warning("cannot unpickle a locate answer: %r", exc)
            return None


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)
