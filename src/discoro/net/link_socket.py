"""How a link's TCP socket is tuned: few bytes ahead of a small message in the kernel.

Purpose (issue 9): a ping sent while 1 MiB messages stream over the same link must arrive in
a few milliseconds. Our writer lets control frames and small messages overtake queued bulk
fragments (`net.link`'s lanes), but only while the bulk waits in the link: bytes the kernel
holds cannot be overtaken. Left alone, Linux autotunes a loopback link's socket buffers to
several MiB at the sender and up to ``tcp_rmem``'s maximum (32 MiB) at the receiver, and a
receiver slower than its sender keeps them full: measured, ~16 MB waited in the receiving
socket and ~4 MB in the sending one, 30-200 ms at the stream's rate (bench/RESULTS.md).

Rules:
- Every link socket (dialled or accepted, plain or TLS, on any loop or a transport thread)
  goes through `tune` once its stream is up, before anything is written on it.
- Sending: ``TCP_NOTSENT_LOWAT`` (`NOTSENT_LOWAT`) keeps the kernel's *unsent* bytes small:
  a write stops taking bytes past it, so the rest waits in the transport and, below the
  transport's own limit, in the link's lanes, where a small message overtakes it. Bytes in
  flight are not limited, so the window and the throughput are untouched.
- Receiving: ``SO_RCVBUF`` (`RECEIVE_BUFFER`) caps what the kernel queues for a reader that
  is behind. Fixing it turns autotuning off, which a long fat path needs (its window is the
  bandwidth-delay product), so it is set only on a link whose measured round trip is below
  `NEAR_RTT` (loopback, a LAN), where the cap is far above the bandwidth-delay product.
- Each knob is a module attribute read per socket (None: leave the kernel's default). A
  platform without an option (no ``TCP_NOTSENT_LOWAT``, no ``TCP_INFO``) just goes without.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys

#: Unsent bytes the kernel may hold per link socket (``TCP_NOTSENT_LOWAT``).
NOTSENT_LOWAT: int | None = 128 * 1024
#: The receive buffer of a near link (``SO_RCVBUF``; Linux doubles it for its bookkeeping).
RECEIVE_BUFFER: int | None = 1024 * 1024
#: Round trips (seconds) below which a link is near enough for `RECEIVE_BUFFER`.
NEAR_RTT = 0.002

_TCP_NOTSENT_LOWAT: int | None = getattr(socket, "TCP_NOTSENT_LOWAT", None)
#: Linux's ``struct tcp_info``: tcpi_rtt (microseconds) is the u32 at byte 68.
_TCP_INFO: int | None = getattr(socket, "TCP_INFO", None) if sys.platform == "linux" else None
_RTT_OFFSET = 68


def tune(sock: socket.socket) -> None:
    """Set a link socket's options (see the module docstring); TCP sockets only."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if NOTSENT_LOWAT is not None and _TCP_NOTSENT_LOWAT is not None:
        with contextlib.suppress(OSError):  # an older kernel without it
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, NOTSENT_LOWAT)
    if RECEIVE_BUFFER is not None:
        rtt = round_trip(sock)
        if rtt is not None and rtt < NEAR_RTT:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)


def round_trip(sock: socket.socket) -> float | None:
    """The kernel's smoothed round trip of ``sock`` in seconds (None where unknown)."""
    if _TCP_INFO is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 104)
    except OSError:
        return None
    if len(info) < _RTT_OFFSET + 4:
        return None
    (micros,) = struct.unpack_from("I", info, _RTT_OFFSET)
    return float(micros) / 1e6
