"""Handing a Python socket to the event loop: exactly one owner of its descriptor at a time.

Invariant: a descriptor we made (a dialled Unix socket) or accepted (the front door) is
closed exactly once, by its owner of the moment, and never by the garbage collector:
- until the loop has made a transport of it, the owner is our socket object;
- from then on, the transport: every failure after that point closes the transport (which
  closes the descriptor), never the socket object.

Why the socket object must let go under uvloop: uvloop's transport runs on the descriptor
*number* (libuv closes it when the transport closes) and keeps our socket object beside it
only to detach it at that close. If the transport were ever collected without being closed
(a link nobody referenced any more while its reading was paused), libuv would close the
number and the socket object, collected too (or later, from a traceback's frame), would
close it again: by then it may be another link's descriptor (EBADF on that link, EEXIST
when libuv registers a reused number, ``unclosed socket`` warnings traced to the dial). So
the object is detached as soon as the transport holds the number: it can close nothing.
asyncio's transport holds and closes this very socket object: one object, one close.

On failure to make the transport both loops close what they took (uvloop closes the
descriptor and detaches our object; asyncio's transport closes our object, a turn later:
closing it now first is the same single close), and nothing is taken when they fail
before: `release` closes the object, which is then either the only close or a no-op.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    import socket
    from collections.abc import Callable

__all__ = ["adopted", "connect_unix", "release"]


def _is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    return type(loop).__module__.startswith("uvloop")


def adopted(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """The transport made of ``sock`` owns its descriptor now: under uvloop our object lets
    go of the number (module text); under asyncio the transport is this object already."""
    if _is_uvloop(loop):
        sock.detach()


def release(sock: socket.socket) -> None:
    """Making a transport of ``sock`` failed: its descriptor is closed exactly once (by
    this call, or already by the loop, which then left the object holding none)."""
    sock.close()


async def connect_unix(
    loop: asyncio.AbstractEventLoop,
    make_protocol: Callable[[], asyncio.BaseProtocol],
    sock: socket.socket,
) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """(transport, protocol) over the connected Unix socket ``sock``; on any failure (cancellation
    included) its descriptor is closed before the exception propagates.

    No timeout around it, on purpose: the socket is connected already, and a timeout's
    separate task could be cancelled before it ever handed ``sock`` to the loop."""
    try:
        transport, protocol = await loop.create_unix_connection(make_protocol, sock=sock)
    except BaseException:
        release(sock)
        raise
    adopted(loop, sock)
    return transport, protocol
