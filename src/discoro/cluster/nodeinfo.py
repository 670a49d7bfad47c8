"""What a status coroutine learns about a node (later-versions 3.3, D5).

`DiscoroNodeInfo` is the ``info`` of every ``Node*`` status message. It *is* the node's
address string (a `str` subclass whose value is the address), so a seed-era status coroutine
that prints it, compares it or passes it to ``run_at`` works unchanged, and it carries the
later versions' attributes ``name``, ``addr``, ``cpus``, ``platform`` and ``avail_info``.

`DiscoroNodeAvailInfo` is a node's availability: its ``location`` (a `NodeLocation`: files
sent there go to the node directory; see `node_location`), available CPU percent (100 =
idle), available memory bytes, free disk bytes (of the node directory's filesystem) and
available swap percent. Figures a node cannot measure (no psutil) are None. The scheduler
also sends a bare one to the status coroutine with the node's pulses
(`discoro.cluster.node_gates`).

Both are made from the figures server processes send with their pulses
(`discoro.cluster.load`): `node_info` / `avail_info` never raise on missing figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discoro.net.location import Location, NodeLocation

if TYPE_CHECKING:
    from collections.abc import Mapping


class DiscoroNodeAvailInfo:
    """A node's availability figures (see the module docstring)."""

    __slots__ = ("cpu", "disk", "location", "memory", "swap")

    #: never a status code: a status coroutine written for `StatusMessage` alone
    #: (``msg.status == Scheduler.X``, then ``msg.info``) passes over these reports
    status = None
    info = None

    def __init__(
        self,
        location: object,
        cpu: float | None,
        memory: float | None,
        disk: float | None,
        swap: float | None,
    ) -> None:
        self.location = location
        self.cpu = cpu
        self.memory = memory
        self.disk = disk
        self.swap = swap

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.location, self.cpu, self.memory, self.disk, self.swap))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DiscoroNodeAvailInfo):
            return NotImplemented
        return self.__reduce__() == other.__reduce__()

    def __hash__(self) -> int:
        return hash((self.location, self.cpu, self.memory, self.disk, self.swap))

    def __repr__(self) -> str:
        return (
            f"DiscoroNodeAvailInfo({self.location!r}, cpu={self.cpu}, memory={self.memory}, "
            f"disk={self.disk}, swap={self.swap})"
        )


class DiscoroNodeInfo(str):
    """A node's description that is also its address string (see the module docstring)."""

    name: str
    addr: str
    cpus: int
    platform: str
    avail_info: DiscoroNodeAvailInfo | None

    def __new__(
        cls,
        name: str,
        addr: str,
        cpus: int,
        platform: str,
        avail_info: DiscoroNodeAvailInfo | None = None,
    ) -> DiscoroNodeInfo:
        info = super().__new__(cls, addr)
        info.name = name
        info.addr = addr
        info.cpus = cpus
        info.platform = platform
        info.avail_info = avail_info
        return info

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name, self.addr, self.cpus, self.platform, self.avail_info))

    def __repr__(self) -> str:
        return (
            f"DiscoroNodeInfo(name={self.name!r}, addr={self.addr!r}, cpus={self.cpus}, "
            f"platform={self.platform!r}, avail_info={self.avail_info!r})"
        )


def _number(figures: Mapping[str, object], key: str) -> float | None:
    value = figures.get(key)
    return float(value) if isinstance(value, int | float) else None


def _available(percent_used: float | None) -> float | None:
    return None if percent_used is None else max(0.0, 100.0 - percent_used)


def node_location(location: object) -> object:
    """The node's location for a process's ``location``: a `NodeLocation` (files sent to it
    go to the node directory, D8); anything else as it is."""
    if isinstance(location, Location) and not isinstance(location, NodeLocation):
        return NodeLocation.of(location)
    return location


def avail_info(location: object, figures: Mapping[str, object]) -> DiscoroNodeAvailInfo:
    """The availability of the node whose process at ``location`` reported ``figures``."""
    return DiscoroNodeAvailInfo(
        node_location(location),
        _available(_number(figures, "cpu")),
        _number(figures, "memory_avail"),
        _number(figures, "disk_free"),
        _available(_number(figures, "swap")),
    )


def node_info(
    addr: str, location: object, figures: Mapping[str, object], servers: int
) -> DiscoroNodeInfo:
    """The `DiscoroNodeInfo` of the node at ``addr``; ``servers``: how many server processes
    it has (the node's own count when it reported one)."""
    reported = figures.get("servers")
    cpus = reported if isinstance(reported, int) and reported > 0 else servers
    name = figures.get("node_name")
    platform = figures.get("platform")
    return DiscoroNodeInfo(
        str(name) if name else addr,
        addr,
        cpus,
        str(platform).lower() if platform else "",
        avail_info(location, figures),
    )
