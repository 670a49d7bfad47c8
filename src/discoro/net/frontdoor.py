"""`FrontDoor`: the listening socket, and who may wait in it before authenticating.

Theory of operation: the front door accepts connections itself (``sock_accept`` in a task,
not ``loop.create_server``), so it decides what happens when the process runs out of file
descriptors, and it keeps the table of accepted connections that have not authenticated yet
(`Link` tells it when one arrives, authenticates or goes). The handshake's own deadline
(`link.HANDSHAKE_TIMEOUT`) still ends every connection that does not authenticate in time.

Invariants:
- At most `MAX_UNAUTHENTICATED` accepted connections are unauthenticated at once, and at most
  `MAX_PER_SOURCE` from one address: a newcomer over either limit pushes out the oldest one
  (of that address, or of all), so a flood holds a bounded amount of memory and descriptors,
  and a legitimate client that connects during it still gets in and has its whole handshake
  deadline. With the receive buffer sized for handshake frames (`wire.frames`), that is a few
  KiB per connection.
- Running out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) never raises out of
  the accept loop: the older half of the unauthenticated connections is shed to free
  descriptors and accepting pauses for `SHED_PAUSE` seconds (or, while there is nothing to
  shed, from `RETRY_MIN` doubling up to `RETRY_MAX`), then resumes.
- Refusals, handshake timeouts, sheddings and accept failures are logged through one
  `SummaryLog`: a flood costs a line per kind per interval plus a count, never a line each.
- A process listens on TCP and, for same-host peers, on an abstract Unix socket
  (`local_links`); one accept loop per listening socket, the same limits for both (the
  Unix connections' source is `local_links.LOCAL_SOURCE`), except that the per-source limit
  does not apply to that one label: every process of the host shares it (a node's servers
  all dial the scheduler at once), and a dropped Unix handshake would send its dialler to
  TCP for good; the overall limit still holds.
- Loop thread only.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import TYPE_CHECKING

from discoro.core.log import logger
from discoro.net import handover, local_links
from discoro.net.ratelimit import SummaryLog

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    from discoro.net.link import Link

__all__ = ["MAX_PER_SOURCE", "MAX_UNAUTHENTICATED", "FrontDoor"]

MAX_UNAUTHENTICATED = 64
MAX_PER_SOURCE = 8
RETRY_MIN, RETRY_MAX = 0.05, 1.0
SHED_PAUSE = 0.005  # enough for the shed connections to close their sockets
BACKLOG = 512
#: accept() errors that mean "out of a resource": pause and retry, never raise
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class FrontDoor:
    """The listening socket of one `Network` and its admission policy (module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.log = SummaryLog(loop, logger)
        self._waiting: dict[Link, tuple[str, asyncio.Transport]] = {}  # oldest first
        self._per_source: dict[str, int] = {}
        self._socks: list[socket.socket] = []  # TCP, then the Unix one if any
        self._tasks: list[asyncio.Task[None]] = []
        self._starting: set[asyncio.Task[None]] = set()
        self.accepted = 0  # connections accepted so far (for tests and status)
        self.shed = 0  # unauthenticated connections pushed out so far

    # -- the listening socket ---------------------------------------------------------------

    async def listen(
        self,
        host: str,
        port: int,
        make_protocol: Callable[[], asyncio.BaseProtocol],
        tls: ssl.SSLContext | None = None,
    ) -> tuple[str, int]:
        """Listen at ``host``:``port`` (0: any free port) and accept in the background;
        the address bound."""
        infos = await self.loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:  # say where, as loop.create_server does
                why = (exc.strerror or str(exc)).lower()
                raise OSError(exc.errno, f"cannot listen at {address!r}: {why}") from None
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._serve(sock, make_protocol, tls)
        bound = sock.getsockname()
        return str(bound[0]), int(bound[1])

    def listen_local(self, name: str, make_protocol: Callable[[], asyncio.BaseProtocol]) -> bool:
        """Also listen at the abstract Unix socket ``name`` (`local_links`); False (one
        warning) when another process holds it."""
        sock = local_links.listening_socket(name, BACKLOG)
        if sock is None:
            return False
        self._serve(sock, make_protocol, None)
        return True

    def _serve(
        self,
        sock: socket.socket,
        make_protocol: Callable[[], asyncio.BaseProtocol],
        tls: ssl.SSLContext | None,
    ) -> None:
        self._socks.append(sock)
        self._tasks.append(self.loop.create_task(self._accept_loop(sock, make_protocol, tls)))

    def close(self) -> None:
        """Stop accepting (idempotent); connections already accepted are not touched."""
        for task in self._tasks:
            task.cancel()
        for sock in self._socks:
            sock.close()
        self._tasks.clear()
        self._socks.clear()
        self.log.close()

    async def _accept_loop(
        self,
        sock: socket.socket,
        make_protocol: Callable[[], asyncio.BaseProtocol],
        tls: ssl.SSLContext | None,
    ) -> None:
        delay = RETRY_MIN
        while True:
            try:
                conn, _ = await self.loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno not in _EXHAUSTED:
                    if sock.fileno() < 0:
                        return  # closed
                    self.log.log("accept errors", "cannot accept a connection: %s", exc)
                    await asyncio.sleep(RETRY_MIN)
                    continue
                # the older half of the waiting connections gives its descriptors back
                # (the newest keep their chance to finish the handshake); only when there
                # was nothing to shed does the pause grow
                freed = self._shed_oldest((len(self._waiting) + 1) // 2)
                pause = SHED_PAUSE if freed else delay
                self.log.log(
                    "accept pauses",
                    "cannot accept connections (%s): paused %.2f s, %d unauthenticated dropped",
                    exc.strerror or exc,
                    pause,
                    freed,
                )
                await asyncio.sleep(pause)
                if not freed:
                    delay = min(RETRY_MAX, delay * 2)
                continue
            delay = RETRY_MIN
            self.accepted += 1
            task = self.loop.create_task(self._start(conn, make_protocol, tls))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start(
        self,
        conn: socket.socket,
        make_protocol: Callable[[], asyncio.BaseProtocol],
        tls: ssl.SSLContext | None,
    ) -> None:
        # ``conn`` is ours until its transport exists, then the transport's (`handover`)
        try:
            if conn.family == getattr(socket, "AF_UNIX", None):
                local_links.tune(conn)
            await self.loop.connect_accepted_socket(make_protocol, conn, ssl=tls)
        except BaseException as exc:  # TLS refused, reset before we got to it, cancelled
            handover.release(conn)
            if not isinstance(exc, Exception):
                raise
            self.log.log("refused", "refused connection: %s", str(exc) or type(exc).__name__)
            return
        handover.adopted(self.loop, conn)

    # -- admission (called by the links) ---------------------------------------------------

    def arrived(self, link: Link, transport: asyncio.Transport) -> None:
        """An accepted connection is up and has not authenticated: admit it, pushing out
        the oldest waiting one from its address, or of all, if over a limit."""
        source = local_links.peer_label(transport)[0]
        limit = MAX_UNAUTHENTICATED if source == local_links.LOCAL_SOURCE else MAX_PER_SOURCE
        if self._per_source.get(source, 0) >= limit:
            oldest = next(k for k, (s, _) in self._waiting.items() if s == source)
            self._drop(oldest, f"more than {limit} unauthenticated from {source}")
        if len(self._waiting) >= MAX_UNAUTHENTICATED:
            self._drop(next(iter(self._waiting)), f"more than {MAX_UNAUTHENTICATED} in all")
        self._waiting[link] = (source, transport)
        self._per_source[source] = self._per_source.get(source, 0) + 1

    def settled(self, link: Link) -> None:
        """``link`` authenticated or went away: it no longer waits (idempotent)."""
        entry = self._waiting.pop(link, None)
        if entry is None:
            return
        source = entry[0]
        left = self._per_source[source] - 1
        if left:
            self._per_source[source] = left
        else:
            del self._per_source[source]

    @property
    def waiting(self) -> int:
        """How many accepted connections have not authenticated yet."""
        return len(self._waiting)

    def _drop(self, link: Link, why: str) -> None:
        transport = self._waiting[link][1]
        self.settled(link)
        self.shed += 1
        self.log.log(
            "unauthenticated dropped",
            "dropped unauthenticated connection from %s: %s",
            getattr(link, "remote_address", "?"),
            why,
        )
        transport.abort()

    def _shed_oldest(self, count: int) -> int:
        dropped = 0
        while self._waiting and dropped < count:
            link = next(iter(self._waiting))
            transport = self._waiting[link][1]
            self.settled(link)
            self.shed += 1
            transport.abort()
            dropped += 1
        return dropped
