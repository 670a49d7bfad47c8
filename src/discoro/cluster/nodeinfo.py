"""`DiscoroNodeInfo`: the ``info`` of every ``Node*`` status message (later-versions D5).

It *is* the node's address string (a `str` subclass whose value is the address), so a 2015
status coroutine that prints it, compares it with an address or passes it to ``run_at`` works
unchanged, and it carries the later versions' fields as attributes for programs that read
them: ``name`` (the node's name), ``addr`` (the address again), ``cpus`` (its server
processes), ``platform`` (lower-cased ``platform.platform()`` of the node, "" when unknown)
and ``avail_info`` (a ``DiscoroNodeAvailInfo`` with the node's available CPU, memory, disk
and swap, or None when unknown). Its ``repr`` is the address's, as in 2015; tuple unpacking
(4.5.6 had a namedtuple) is not supported.

It pickles by value (``__reduce__``), so it reaches a client in another process intact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from discoro.cluster.scheduler_state import Proc


class DiscoroNodeInfo(str):
    """A node's address that also carries ``name``, ``addr``, ``cpus``, ``platform`` and
    ``avail_info``."""

    name: str
    cpus: int
    platform: str
    avail_info: object

    def __new__(
        cls,
        addr: str,
        name: str = "",
        cpus: int = 0,
        platform: str = "",
        avail_info: object = None,
    ) -> DiscoroNodeInfo:
        info = super().__new__(cls, addr)
        info.name = name or str(addr)
        info.cpus = int(cpus)
        info.platform = platform
        info.avail_info = avail_info
        return info

    @property
    def addr(self) -> str:
        """The node's address (the string value itself, as a plain `str`)."""
        return str.__str__(self)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.addr, self.name, self.cpus, self.platform, self.avail_info))


def node_info(addr: str, procs: Iterable[Proc]) -> DiscoroNodeInfo:
    """The info of node ``addr`` from what the scheduler knows of its processes ``procs``
    (the name their pulses report, their number)."""
    group = list(procs)
    name = ""
    for proc in group:
        name = str(proc.load_figures.get("node_name") or "")
        if name:
            break
    return DiscoroNodeInfo(addr, name, len(group))
