"""`DiscoroNodeAllocate`: which nodes a computation uses, and how many of their servers
(later-versions 3.2, D9).

A rule has an address pattern (a host name or IP, resolved once; or a pattern where ``*``
stands for any run of characters, matched against the **whole** address), a platform regular
expression (searched case-insensitively in the node's platform string) and minimums.
`allocate` says what the rule decides for one node: ``< 0`` the rule does not apply (try the
next), ``0`` do not use the node, ``> 0`` use that many servers. Users may subclass it and
override `allocate`.

Rules of the choice (`servers_to_use`): the rules are tried in list order; the first that
applies (a non-negative answer) decides, capped at the node's server count; when none applies
the node is used with all its servers. The later versions' trap is kept on purpose: the
default ``cpus=0`` means "do not use", so a bare host name in ``node_allocations`` *excludes*
that host. A host name that cannot be resolved makes a rule that never applies (the original
matched every node instead).

The rules are objects of the client's (maybe of a class it defines), so they are applied in
the client: the scheduler asks the client's router (`protocol.AllocateQuery`) and never runs
a client's code.
"""

from __future__ import annotations

import re
import socket
from typing import TYPE_CHECKING

from discoro.core.log import logger

if TYPE_CHECKING:
    from collections.abc import Iterable

    from discoro.cluster.nodeinfo import DiscoroNodeInfo


def _pattern(node: str) -> re.Pattern[str] | None:
    node = node.strip()
    if "*" not in node:
        try:
            node = socket.gethostbyname(node)
        except (OSError, UnicodeError) as exc:
            logger.warning("node allocation for %r never applies: %s", node, exc)
            return None
    return re.compile("(?:" + ".*".join(re.escape(part) for part in node.split("*")) + r")\Z")


class DiscoroNodeAllocate:
    """A rule for choosing nodes (see the module docstring)."""

    def __init__(
        self, node: str, platform: str = "", cpus: int = 0, memory: int = 0, disk: int = 0
    ) -> None:
        if not isinstance(node, str):
            raise TypeError(f"node must be a host name, an address or a pattern, not {node!r}")
        self.node = node
        self.ip_rex = _pattern(node)
        self.platform = platform
        self._platform_rex = re.compile(platform, re.IGNORECASE) if platform else None
        self.cpus = int(cpus)
        self.memory = memory
        self.disk = disk

    def applies_to(self, ip_addr: str) -> bool:
        """Whether this rule's address pattern matches ``ip_addr`` (the whole address)."""
        return self.ip_rex is not None and self.ip_rex.match(ip_addr) is not None

    def allocate(
        self,
        ip_addr: str,
        name: str,
        platform: str,
        cpus: int,
        memory: float | None,
        disk: float | None,
    ) -> int:
        """How many servers of the node at ``ip_addr`` to use: <0 this rule does not apply,
        0 do not use the node, >0 that many. ``memory``/``disk``: available bytes (None:
        unknown, so not checked)."""
        if self._platform_rex is not None and not self._platform_rex.search(platform or ""):
            return -1
        if self.memory and memory is not None and memory < self.memory:
            return 0
        if self.disk and disk is not None and disk < self.disk:
            return 0
        if self.cpus > 0:
            return self.cpus if cpus >= self.cpus else 0
        if self.cpus == 0:
            return 0
        return max(0, cpus + self.cpus)

    def __repr__(self) -> str:
        return (
            f"DiscoroNodeAllocate({self.node!r}, platform={self.platform!r}, "
            f"cpus={self.cpus}, memory={self.memory}, disk={self.disk})"
        )


def allocations(items: object) -> list[DiscoroNodeAllocate]:
    """``node_allocations`` as rules: strings become ``DiscoroNodeAllocate(string)``; any
    other kind of item is a TypeError."""
    if items is None:
        return []
    if not isinstance(items, list | tuple):
        raise TypeError(f"node_allocations must be a list, not {items!r}")
    rules = []
    for item in items:
        if isinstance(item, str):
            item = DiscoroNodeAllocate(item)
        if not isinstance(item, DiscoroNodeAllocate):
            raise TypeError(
                f"node_allocations items must be DiscoroNodeAllocate or str, not {item!r}"
            )
        rules.append(item)
    return rules


def servers_to_use(rules: Iterable[DiscoroNodeAllocate], info: DiscoroNodeInfo) -> int:
    """How many servers of the node described by ``info`` to use (0: not the node)."""
    avail = info.avail_info
    memory = avail.memory if avail is not None else None
    disk = avail.disk if avail is not None else None
    for rule in rules:
        if not rule.applies_to(info.addr):
            continue
        try:
            count = rule.allocate(info.addr, info.name, info.platform, info.cpus, memory, disk)
        except Exception:
            logger.exception("node allocation %r failed for %s; not using it", rule, info.addr)
            return 0
        if count >= 0:
            return min(int(count), info.cpus) if info.cpus > 0 else int(count)
    return info.cpus if info.cpus > 0 else 1 << 30
