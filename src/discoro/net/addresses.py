"""Which address a kernel binds to and where its discovery broadcasts go.

Rule (DESIGN decision 6): announcements go only to the broadcast address of the interface
the kernel is bound to (127.255.255.255 on loopback), never to a blind 255.255.255.255 out of
every interface.
"""

from __future__ import annotations

import ipaddress
import socket

import psutil

LOOPBACK_BROADCAST = "127.255.255.255"


def _interface_ipv4() -> list[tuple[str, str, str | None, str | None]]:
    """(interface, address, netmask, broadcast) of every IPv4 address of the machine."""
    found = []
    for name, addrs in psutil.net_if_addrs().items():
        for addr in addrs:
            if addr.family == socket.AF_INET:
                found.append((name, addr.address, addr.netmask, addr.broadcast))
    return found


def default_node_address() -> str:
    """The address of this host's name if it is routable, else the first non-loopback
    interface address, else loopback."""
    try:
        by_name = socket.gethostbyname(socket.gethostname())
    except OSError:
        by_name = "127.0.0.1"
    if not by_name.startswith("127."):
        return by_name
    for _, address, _, _ in _interface_ipv4():
        if not address.startswith("127."):
            return address
    return "127.0.0.1"


def broadcast_address(address: str) -> str:
    """The broadcast address of the interface that holds ``address``."""
    if address.startswith("127."):
        return LOOPBACK_BROADCAST
    for _, own, netmask, broadcast in _interface_ipv4():
        if own != address:
            continue
        if broadcast:
            return broadcast
        if netmask:
            network = ipaddress.IPv4Network(f"{own}/{netmask}", strict=False)
            return str(network.broadcast_address)
    raise ValueError(f"{address} is not an address of this machine; cannot broadcast there")
