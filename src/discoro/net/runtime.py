"""`network_of`: a kernel's network runtime as the net layer's own `Network` type.

The kernel holds its network as the core's `NetworkRuntime` Protocol (the core cannot name a
class of a layer above it). The net layer is the one that installs the factory, so the object
is always a `Network`: code at or above the net layer that needs more than the Protocol (peers,
requests) takes it from here instead of narrowing by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from discoro.core.kernel import AsynCoro
    from discoro.net.network import Network


def network_of(kernel: AsynCoro) -> Network:
    """``kernel.network()`` (built and started on first use), typed as the net layer's."""
    return cast("Network", kernel.network())
