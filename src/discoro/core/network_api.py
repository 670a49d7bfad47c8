"""`NetworkRuntime`: what the core needs from the network layer, as a typing Protocol.

The core sits below the network layer and never imports it. A higher layer installs a factory
(`AsynCoro.install_network`) whose product has this shape; every distributed call of the core
(remote coroutines and channels, `Coro.locate`, the distributed half of `AsynCoro`) goes
through it and through nothing else. The net layer's `Network` satisfies it structurally:
mypy checks that where the net layer installs its factory, so a change on either side that
breaks the contract is a type error, not a runtime surprise. Higher layers that need more of
the network than this use the net layer's own type (`discoro.net.network.network_of`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio
    import os
    from collections.abc import Sequence

    from discoro.core.channel import Channel
    from discoro.core.coro import Coro


class NetworkRuntime(Protocol):
    # -- identity and lifecycle -----------------------------------------------------------

    @property
    def location(self) -> Any:  # the net layer's `Location`, once listening; else None
        ...

    @property
    def name(self) -> str | None: ...

    @property
    def dest_path(self) -> os.PathLike[str] | str: ...

    def start_soon(self) -> asyncio.Future[None]: ...

    async def started(self) -> None: ...

    # -- remote coroutines (0 or 1 queued/done, -1 failed; as the seed's return values) ---

    def send(self, coro: Coro, message: object) -> int: ...

    async def deliver(self, coro: Coro, message: object, timeout: float | None) -> int: ...

    def terminate(self, coro: Coro) -> int: ...

    def throw(self, coro: Coro, error: BaseException) -> int: ...

    async def monitor(self, monitor: Coro, observed: Coro) -> int: ...

    def send_monitor_exception(
        self, monitor: Coro, observed: Coro, info: tuple[Any, ...]
    ) -> None: ...

    # -- remote channels ------------------------------------------------------------------

    def channel_send(self, channel: Channel, message: object) -> int: ...

    async def channel_deliver(
        self, channel: Channel, message: object, timeout: float | None, n: int
    ) -> int: ...

    async def channel_subscribe(
        self, channel: Channel, subscriber: Coro | Channel, timeout: float | None
    ) -> int: ...

    async def channel_unsubscribe(
        self, channel: Channel, subscriber: Coro | Channel, timeout: float | None
    ) -> int: ...

    # -- names, peers, files --------------------------------------------------------------

    async def locate(
        self, kind: str, name: str, location: object, timeout: float | None
    ) -> object: ...

    async def peer(
        self, loc: object, udp_port: int = 0, stream_send: bool = False, broadcast: bool = False
    ) -> int: ...

    def add_status_subscriber(self, coro: Coro) -> None: ...

    def remove_status_subscriber(self, coro: Coro) -> None: ...

    async def send_file(
        self,
        location: object,
        file: str | os.PathLike[str],
        dir: str | None = None,
        overwrite: bool = False,
        timeout: float | None = None,
    ) -> int | os.stat_result: ...

    async def del_file(
        self,
        location: object,
        file: str | os.PathLike[str],
        dir: str | None = None,
        timeout: float | None = None,
    ) -> int: ...

    def set_dest_path(self, path: str | os.PathLike[str]) -> None: ...

    # -- peers by hand (later versions) ---------------------------------------------------

    def peer_locations(self) -> Sequence[object]: ...

    async def close_peer(self, location: object, timeout: float | None = None) -> int: ...

    async def discover_peers(self, port: int | None = None) -> int: ...

    def ignore_peers(self, flag: bool) -> None: ...

    # ended coroutines a remote monitor may still ask for (filled by an upper layer)
    ended_coros: dict[int, Coro]
