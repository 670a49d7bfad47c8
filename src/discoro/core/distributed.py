"""The distributed half of `AsynCoro`'s API (reference 2.3), as thin calls into the network.

The core does not know how networking works; these methods only reach the network runtime
that a higher layer installed (`AsynCoro.install_network`). Calling any of them starts
networking with the options given to `AsynCoro(...)` (or the defaults).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

MSG_TIMEOUT = 10.0  # the later versions' default for close_peer (``MsgTimeout``)

if TYPE_CHECKING:
    from discoro.core.coro import Coro
    from discoro.core.network_api import NetworkRuntime


class DistributedMethods:
    def network(self) -> NetworkRuntime:  # provided by AsynCoro
        raise NotImplementedError

    async def locate(self, name: str, timeout: float | None = None) -> Any:
        """The `Location` of the peer kernel named ``name`` (None on timeout)."""
        return await self.network().locate("peer", name, None, timeout)

    async def peer(
        self, loc: object, udp_port: int = 0, stream_send: bool = False, broadcast: bool = False
    ) -> int:
        """Introduce a peer that discovery cannot reach: a `Location` (dialled directly) or a
        host (introduced by UDP to its ``udp_port``; ``broadcast`` asks it to re-broadcast
        the introduction on its network). 0 on success, -1 on failure."""
        return int(await self.network().peer(loc, udp_port, stream_send, broadcast))

    def peer_status(self, coro: Coro | None) -> None:
        """Send `PeerStatus` messages to ``coro`` (first ``Online`` for every known peer);
        several subscribers are allowed; ``peer_status(None)`` is accepted and does nothing.
        Use `unsubscribe_peer_status` to stop."""
        if coro is not None:
            self.network().add_status_subscriber(coro)

    def unsubscribe_peer_status(self, coro: Coro) -> None:
        self.network().remove_status_subscriber(coro)

    async def send_file(
        self,
        location: object,
        file: str,
        dir: str | None = None,
        overwrite: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Send ``file`` to the peer at ``location``; 0 sent, 1 already there, an
        ``os.stat_result`` of a different existing file (not overwritten), -1 on error."""
        return await self.network().send_file(location, file, dir, overwrite, timeout)

    async def del_file(
        self, location: object, file: str, dir: str | None = None, timeout: float | None = None
    ) -> int:
        """Delete a file sent earlier to ``location`` (same ``dir``); 0 or -1."""
        return int(await self.network().del_file(location, file, dir, timeout))

    def peers(self) -> list[object]:
        """The `Location` of every connected peer."""
        return list(self.network().peer_locations())

    async def close_peer(self, location: object, timeout: float | None = None) -> int:
        """Say goodbye to the peer at ``location`` and close its connection (it does not
        re-dial); 0, or -1 if it is not a peer. Waits at most ``timeout`` (default
        ``MsgTimeout``) for the connection to go."""
        wait = MSG_TIMEOUT if timeout is None else timeout
        return int(await self.network().close_peer(location, wait))

    async def discover_peers(self, port: int | None = None) -> int:
        """Announce this process again, to the discovery port or to ``port``; 0 or -1."""
        return int(await self.network().discover_peers(port))

    def ignore_peers(self, flag: bool) -> None:
        """Stop (True) or resume (False) connecting to processes that announce themselves."""
        self.network().ignore_peers(flag)

    @property
    def dest_path(self) -> str:
        """Where received files go. Setting it re-roots the path under the original root."""
        return str(self.network().dest_path)

    @dest_path.setter
    def dest_path(self, path: str) -> None:
        self.network().set_dest_path(path)
