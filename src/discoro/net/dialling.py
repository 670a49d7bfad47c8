"""Dialling a peer: a link over its same-host Unix socket if it has one, else over TCP.

Rules (`local_links` has the why):
- A location is tried over its abstract Unix socket first unless it is known to be
  TCP-only (or local links are off); a Unix attempt that connected but did not authenticate
  makes it TCP-only (one warning) and this dial goes on over TCP at once.
- Either way the link is the same `Link`: it must authenticate as the location dialled
  within ``link.HANDSHAKE_TIMEOUT`` seconds (read per dial: a module knob), after a connect
  that took at most `DIAL_TIMEOUT` seconds (TCP; a Unix socket is connected before the
  loop gets it); a link that does not is aborted.
- Descriptors have one owner at a time (`handover`): a dialled Unix socket is closed by our
  socket object until its transport exists and by the transport after; whatever fails
  closes it once, through that owner, before the dial returns.
- Loop thread only.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from discoro.core.log import logger
from discoro.errors import ProtocolError
from discoro.net import handover
from discoro.net import link as link_module
from discoro.net.link import Link
from discoro.wire.handshake import Role

if TYPE_CHECKING:
    import socket

    from discoro.net.location import Location
    from discoro.net.network import Network

__all__ = ["DIAL_TIMEOUT", "dial"]

DIAL_TIMEOUT = 2.0
_FAILURES = (OSError, TimeoutError, ConnectionError, ProtocolError)


async def dial(network: Network, location: Location) -> bool:
    """Dial ``location``: whether a link to it authenticated."""
    local = network.local_links
    if local.worth_trying(location) and location != network.location:
        sock = local.connect(location)
        if sock is not None:
            try:
                await link_over(network, location, sock)
                local.worked(location)
                return True
            except _FAILURES as exc:
                local.failed(location, exc)
    try:
        await link_over(network, location, None)
    except _FAILURES as exc:
        logger.debug("cannot connect to %s: %r", location, exc)
        return False
    local.tcp_worked(location)
    return True


async def link_over(network: Network, location: Location, unix: socket.socket | None) -> Link:
    """A link to ``location`` over the connected Unix socket ``unix``, or over TCP (TLS if
    configured) when None; returned once it authenticated, else an exception is raised.

    Ownership (`handover`): ``unix`` is ours until its transport exists, then the
    transport's; every failure closes whichever owns it at that moment, once: the socket
    (in `handover.connect_unix`), or the transport, aborted, before the exception leaves
    (a handshake that failed or timed out, a cancelled dial, a peer that is not the one
    dialled). Nothing is left for the garbage collector to close."""

    def make_link() -> Link:
        return Link(network, Role.CLIENT, dialled=location)

    loop = network.loop
    if unix is None:
        connecting = loop.create_connection(
            make_link, location.addr, location.port, ssl=network.client_ssl
        )
        transport, link = await asyncio.wait_for(connecting, DIAL_TIMEOUT)
    else:
        transport, made = await handover.connect_unix(loop, make_link, unix)
        link = cast("Link", made)
    try:
        await asyncio.wait_for(asyncio.shield(link.authenticated), link_module.HANDSHAKE_TIMEOUT)
    except BaseException:
        transport.abort()  # at once: a peer that does not read must not keep it open
        raise
    return link
