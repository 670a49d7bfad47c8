"""The distributed runtime: transport, peers, discovery, remote references.

Importing this package installs the network factory into the kernel, so the first
distributed call of a program starts networking. The factory imports the network layer
itself when it is first called: a program that only needs a piece of this package (the
node program reads the cluster secret, `discoro.net.secret`) does not load all of it
(~50 ms at every node start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discoro.core.kernel import AsynCoro

if TYPE_CHECKING:
    from discoro.core.network_api import NetworkRuntime


def make_network(
    kernel: AsynCoro, options: dict[str, object], own_thread: bool = False
) -> NetworkRuntime:
    """`discoro.net.network.make_network`, imported when the first network is made."""
    from discoro.net.network import make_network as make

    return make(kernel, options, own_thread)


AsynCoro.install_network(make_network)
