"""`Network`: the distributed runtime of one process (reference section 2).

It owns the TCP (or TLS) server, the peer table, the links, request/reply bookkeeping and
discovery, and it gives the core what remote handles need (`send`, `deliver`, `monitor`, ...).

Invariants:
- Everything here runs on the network's loop thread, except the entry points the core calls
  from other threads (`send`, `terminate`, `throw`), which pickle in the caller's thread and
  hop over. That loop is the kernel's, or, in a process that asks for it (a server: user
  code there must not block message intake), a loop of its own on a transport thread: then
  ``kernel`` is a `transport_thread.CoreHop` and the core reaches the network through
  `threaded.ThreadedNetwork` (`make_network`, ``DISCORO_NET_THREAD``).
- User data crosses the wire only as payloads on authenticated links (raw bytes, or pickle
  5 with buffers out of band: `payloads`); the control fields are msgpack (see `wire`).
- Messages from one process to another arrive in the order sent: one link per peer pair,
  and a queue in front of it while it is being dialled. The one exception: pulses
  (``flow.CONTROL_TYPES``) travel on the control lane, ahead of queued user data.
- A link lost with messages unsent is logged with their number, and the local monitors of
  coroutines at that peer get a `MonitorException` with `LinkLost`.
- A peer's incarnation written off is fenced (`fencing`): its later frames are dropped, the
  local monitors of the coroutines named hear of them once, as lost.
- Every request waits with a timeout or until its peer goes offline; nothing waits forever
  because a peer died.
- Same-host peers (one network namespace) link over an abstract Unix socket, tried before
  TCP when dialling, with TCP as the fallback (`local_links`); everything above the socket
  is the same on both.
- Liveness (`net.liveness`): the process listens for its peers' signed heartbeat datagrams on
  the UDP port with its TCP port's number; a peer's own heartbeat counts as life on its link.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import secrets
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from discoro.core.coro import wait_own
from discoro.core.log import logger
from discoro.core.userdir import user_root
from discoro.errors import MonitorException
from discoro.net import handlers, tls
from discoro.net.addresses import default_node_address
from discoro.net.dialling import dial
from discoro.net.discovery import Discovery
from discoro.net.fencing import Fences
from discoro.net.files import FileTransfer
from discoro.net.frontdoor import FrontDoor
from discoro.net.link import Link, accept_tls
from discoro.net.link_ops import follow, on_link_message, retire
from discoro.net.liveness import Liveness
from discoro.net.local_links import LocalLinks, abstract_name
from discoro.net.local_links import enabled as local_links_enabled
from discoro.net.location import Location, PeerStatus
from discoro.net.peer_admin import PeerAdmin
from discoro.net.peers import MAX_QUEUED, REDIAL_DELAYS, Peer
from discoro.net.remote_channels import RemoteChannels
from discoro.net.secret import resolve_secret
from discoro.net.sending import RemoteSends
from discoro.wire.handshake import Role
from discoro.wire.identity import Identity
from discoro.wire.keys import stretch
from discoro.wire.messages import Message, trusted_message

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from discoro.core.coro import Coro
    from discoro.core.kernel import AsynCoro
    from discoro.core.network_api import NetworkRuntime
    from discoro.net.payloads import Part
    from discoro.net.transport_thread import CoreHop

T = TypeVar("T")
#: When set: 1 (or anything but 0) every process's network runs on a transport thread, 0 none.
NET_THREAD_ENV = "DISCORO_NET_THREAD"
FIRE_AND_FORGET_TIMEOUT = 2.0
DUMPS = pickle.dumps
PROTOCOL = pickle.HIGHEST_PROTOCOL


class PeerOffline(Exception):
    """The process a coroutine lived on went away; sent in a `MonitorException`."""


class LinkLost(Exception):
    """The connection to the process a coroutine lives on broke while messages for it were
    still queued (they were dropped); sent in a `MonitorException`. The coroutine may still
    be running: this monitor is told nothing more about it."""


def _expire(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


class Network(RemoteSends, FileTransfer, RemoteChannels, PeerAdmin):
    def __init__(
        self,
        kernel: AsynCoro,
        options: dict[str, Any],
        core_loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.kernel = kernel
        self.loop = kernel.loop
        # the loop the coroutines run on (not ours when we run on a transport thread)
        self.core_loop = core_loop or self.loop
        self.options = options
        self.secret = resolve_secret(options.get("secret"))
        self.master_key = stretch(self.secret)  # once per process (or handed over by a node)
        self.node: str = options.get("node") or default_node_address()
        self.ext_ip_addr: str | None = options.get("ext_ip_addr")
        self.tcp_port = int(options.get("tcp_port") or 0)
        self.udp_port = int(options.get("udp_port") or 0) or 51350
        self.max_file_size = options.get("max_file_size") or None
        root = options.get("dest_path") or user_root()
        self.dest_root = Path(root).resolve()
        self.dest_path = self.dest_root
        self.sid = secrets.token_hex(8)
        self.name: str | None = options.get("name")
        self.location: Location | None = None
        self.identity: Identity = Identity("?", "0.0.0.0", 0, self.sid)
        certfile, keyfile, cafile = (options.get(k) for k in ("certfile", "keyfile", "cafile"))
        self.server_ssl, self.client_ssl = tls.contexts(certfile, keyfile, cafile)
        self.local_links = LocalLinks(local_links_enabled(self.server_ssl))
        self.peers: dict[Location, Peer] = {}
        # `open_link`'s memo of its last look-up (a Location object, the Peer it found);
        # forgotten whenever a peer leaves ``peers`` (`_offline`), the only removal
        self._last_location: Location | None = None
        self._last_peer: Peer | None = None
        self.ping_interval = 1.0
        self.dead_after = 5
        self.status_subscribers: list[Any] = []
        self.peer_watchers: list[Callable[[Peer], None]] = []  # called when a peer comes online
        # ended coroutines that a remote monitor may still ask for, by id (an upper layer
        # fills it, e.g. a server process with its jobs): such a request is told the end
        self.ended_coros: dict[int, Coro] = {}
        # this process's incarnation (frames are tagged with it) and its fences on peers
        self.fences = Fences()
        # called as hook(peer location, observed coroutine id, monitor) for every remote
        # coroutine's end delivered here (after fences): an upper layer's exactly-once ledger
        self.exit_hooks: list[Callable[[Location, int, Coro], None]] = []
        self.closing = False
        self._replies: dict[int, tuple[asyncio.Future[Any], Location]] = {}
        RemoteSends.__init__(self)
        self._rids = count(1)
        self.front_door = FrontDoor(self.loop)  # the listening socket and who waits in it
        self._started: asyncio.Future[None] | None = None
        self.dispatch_table = handlers.table(self)
        self.discovery: Any = None
        self.liveness = Liveness(self)
        self.lookups: Any = None
        self.files: Any = None
        self.intake: CoreHop | None = None  # set when this runs on a transport thread

    # -- lifecycle ------------------------------------------------------------------------

    def start_soon(self) -> asyncio.Future[None]:
        """Start (once); the future is done when the server listens. Loop thread only."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._start(), loop=self.loop)
        return self._started

    async def started(self) -> None:
        await self.start_soon()

    async def _start(self) -> None:
        from discoro.net.names import Lookups

        link_tls, server_tls = accept_tls(self.loop, self.server_ssl)
        host, port = await self.front_door.listen(
            self.node, self.tcp_port, lambda: Link(self, Role.SERVER, link_tls), server_tls
        )
        self.location = Location(self.ext_ip_addr or self.node, port)
        self.name = self.name or str(self.location)
        self.identity = Identity(self.name, self.location.addr, port, self.sid)
        if self.local_links.on:  # before anyone hears of the location: peers dial it first
            # (a name held by another process costs a warning; we still dial others' names)
            self.front_door.listen_local(
                abstract_name(self.location), lambda: Link(self, Role.SERVER)
            )
        self.lookups = Lookups(self)
        self.kernel.add_shutdown_hook(self.stop)
        await self.liveness.start(host, port)  # UDP, the TCP port's number (`net.liveness`)
        if self.options.get("discover", True):
            self.discovery = Discovery(self)
            await self.discovery.start()
        for peer in self.options.get("peers") or ():
            self.loop.create_task(self.peer(peer))
        logger.debug("discoro network %s listening at %s", self.name, self.location)

    async def stop(self) -> None:
        self.closing = True
        if self.discovery is not None:
            self.discovery.stop()
        self.liveness.stop()
        for peer in self.peers.values():
            if peer.dialing is not None:
                peer.dialing.cancel()
        goodbye = Message("peer_closed")
        links = [peer.link for peer in self.peers.values() if peer.link is not None]
        for link in links:
            link.send(goodbye)
            link.close()
        self.front_door.close()
        if links:
            await asyncio.wait([link.lost for link in links], timeout=2)
        dialing = [peer.dialing for peer in self.peers.values() if peer.dialing is not None]
        for task in dialing:
            task.cancel()  # a re-dial in progress must not outlive the loop
        if dialing:
            await asyncio.gather(*dialing, return_exceptions=True)

    # -- links ----------------------------------------------------------------------------

    def peer_at(self, location: Location) -> Peer:
        peer = self.peers.get(location)
        if peer is None:
            peer = self.peers[location] = Peer(location)
        return peer

    def link_authenticated(self, link: Link, identity: Identity) -> None:
        if identity.sid == self.sid:
            link.close()  # we dialled ourselves
            link.authenticated.set_exception(ConnectionError("dialled itself"))
            link.authenticated.exception()
            return
        location = Location(identity.addr, identity.port)
        peer = self.peer_at(location)
        current = peer.link
        if current is not None and current is not link and not current.retiring:
            if current.conn.link_id < link.conn.link_id:  # both ends keep the same one
                link.peer = peer
                link.authenticated.set_result(peer)
                retire(link)
                return
            retire(current)
            follow(link, current)  # the peer's messages on `current` come first
        link.peer = peer
        peer.link = link
        peer.sid = identity.sid
        peer.name = identity.name
        self.liveness.linked()
        while peer.queue:
            link.send(peer.queue.popleft())
        if not link.authenticated.done():
            link.authenticated.set_result(peer)
        if not peer.online:
            peer.online = True
            peer.said_goodbye = False
            logger.debug("peer %s online", peer)
            self._tell_subscribers(PeerStatus(location, peer.name, PeerStatus.Online))
            for watcher in list(self.peer_watchers):
                watcher(peer)

    def link_lost(self, link: Link, dropped: int = 0) -> None:
        """``link`` is gone, with ``dropped`` messages (requests, user messages) unsent."""
        peer = link.peer
        if dropped and peer is not None:
            logger.warning(
                "dropped %d message(s) queued for %s: its connection was lost", dropped, peer
            )
            self._tell_watchers(
                peer, LinkLost, f"its connection was lost with {dropped} message(s) unsent"
            )
        if peer is None or peer.link is not link:
            return
        peer.link = None
        if self.closing or peer.said_goodbye:
            self._offline(peer, "it closed")
        elif peer.dialing is None:
            # a link that died of silence gets one quick try: the peer is most likely cut off
            delays = REDIAL_DELAYS[:1] if link.died_silent else REDIAL_DELAYS
            peer.dialing = self.loop.create_task(self._redial(peer, delays))

    async def _redial(self, peer: Peer, delays: tuple[float, ...] = REDIAL_DELAYS) -> bool:
        try:
            for delay in delays:
                if delay:
                    await asyncio.sleep(delay)
                if peer.link is not None:
                    return True
                if await self._dial(peer.location):
                    return True
            self._offline(peer, "it cannot be reached")
            return False
        finally:
            peer.dialing = None

    async def _dial(self, location: Location) -> bool:
        """Dial ``location`` (Unix socket first when on this host: `dialling`); whether a
        link authenticated."""
        return await dial(self, location)

    def ensure_link(self, location: Location) -> Peer:
        """The peer at ``location``, being dialled if it has no link yet."""
        peer = self.peer_at(location)
        if peer.link is None and peer.dialing is None:
            peer.dialing = self.loop.create_task(self._redial(peer))
        return peer

    def _offline(self, peer: Peer, why: str) -> None:
        self._last_location = self._last_peer = None  # `open_link`'s memo: peers change
        if self.peers.get(peer.location) is peer:
            del self.peers[peer.location]
        for alias in [loc for loc, p in self.peers.items() if p is peer]:
            del self.peers[alias]
        if peer.queue:
            logger.warning("dropped %d message(s) for %s: %s", len(peer.queue), peer, why)
            peer.queue.clear()
        for rid, (future, location) in list(self._replies.items()):
            if location == peer.location and not future.done():
                future.set_result(None)
                del self._replies[rid]
        self._tell_watchers(peer, PeerOffline, f"went offline: {why}")
        if peer.online:
            peer.online = False
            logger.debug("peer %s offline: %s", peer, why)
            self._tell_subscribers(PeerStatus(peer.location, peer.name, PeerStatus.Offline))

    def _tell_watchers(self, peer: Peer, kind: type[Exception], what: str) -> None:
        """Every local monitor of a coroutine at ``peer`` gets a `MonitorException` with
        ``kind`` (each is told once: the watch ends)."""
        watchers, peer.watchers = peer.watchers, {}
        for entries in watchers.values():
            for observed, monitor in entries:
                error = kind(f"{observed.location} {what}")
                self.kernel.deliver_local(monitor, MonitorException(observed, (kind, error)))

    def write_off(
        self, location: Location, incarnation: int, coro_ids: list[int], error: Exception
    ) -> None:
        """Fence incarnation ``incarnation`` (and older) of the process at ``location``; the
        local monitors (``monitor()`` callers) of its coroutines ``coro_ids`` get a
        `MonitorException` with ``error`` (each is told once: the watch ends)."""
        self.fences.fence(location, incarnation)
        peer = self.peers.get(location)
        if peer is None:
            return
        for ident in coro_ids:
            for observed, monitor in peer.watchers.pop(ident, []):
                self.kernel.deliver_local(monitor, MonitorException(observed, (type(error), error)))

    # -- peer status ----------------------------------------------------------------------

    def add_status_subscriber(self, coro: Coro) -> None:
        self.kernel.call(self._add_status_subscriber, coro)

    def _add_status_subscriber(self, coro: Coro) -> None:
        if coro in self.status_subscribers:
            return
        self.status_subscribers.append(coro)
        for location, peer in list(self.peers.items()):
            if peer.online and location == peer.location:  # not again under an alias
                coro.send(PeerStatus(peer.location, peer.name, PeerStatus.Online))

    def remove_status_subscriber(self, coro: Coro) -> None:
        self.kernel.call(
            lambda: self.status_subscribers.remove(coro) if coro in self.status_subscribers else 0
        )

    def _tell_subscribers(self, status: PeerStatus) -> None:
        for coro in list(self.status_subscribers):
            if coro.send(status) < 0:
                self.status_subscribers.remove(coro)

    # -- sending --------------------------------------------------------------------------

    def post(self, location: Location, message: Message, more: tuple[Part, ...] = ()) -> bool:
        """Queue ``message`` for the peer at ``location`` (loop thread); False if it cannot
        be queued. ``more``: buffers that follow its payload (`payloads.encode`)."""
        message = self.fences.tagged(message)
        link = self.open_link(location)
        if link is not None:
            link.send(message, more)
            return True
        if location == self.location:
            return False
        peer = self.ensure_link(location)
        if len(peer.queue) >= MAX_QUEUED:
            logger.warning("send queue for %s is full; message dropped", peer)
            return False
        if more:  # it waits as one message: the buffers joined behind its payload
            joined = b"".join((message.payload or b"", *more))
            message = trusted_message(message.op, message.rid, message.fields, joined)
        peer.queue.append(message)
        return True

    def open_link(self, location: Location) -> Link | None:
        """The link to the peer at ``location`` if it takes frames now. A link that is
        closing (EOF or error seen, connection_lost not yet called) refuses frames: `post`
        then queues the message for the re-dialled link (or drops it when the peer goes
        offline) instead of raising into the sender."""
        if location is self._last_location:  # the same handle sending again: no hashing
            peer: Peer | None = self._last_peer
        else:
            peer = self.peers.get(location)
            if peer is not None:
                self._last_location, self._last_peer = location, peer
        link = peer.link if peer is not None else None
        if link is not None and link.transport is not None and not link.transport.is_closing():
            return link
        return None

    def flushed(self, location: Location) -> bool:
        """Write what is queued for the peer at ``location`` now; whether all of it went to
        the socket (False while it is being dialled, or the socket is full)."""
        peer = self.peers.get(location)
        link = None if peer is None else peer.link
        if link is None or peer is None or peer.queue:
            return False
        link.flush_now()
        return link.queued_bytes == 0

    async def written(self, location: Location, timeout: float) -> bool:
        """Wait until what was queued for the peer at ``location`` went to the socket: True,
        or False if the peer went away or ``timeout`` seconds passed first."""
        deadline = self.loop.time() + timeout
        while not self.flushed(location):
            peer = self.peers.get(location)
            remaining = deadline - self.loop.time()
            if peer is None or remaining <= 0:
                return False
            if peer.link is None and peer.dialing is not None:
                await asyncio.wait([peer.dialing], timeout=remaining)
            else:
                await asyncio.sleep(min(0.01, remaining))  # the socket drains by itself
        return True

    def post_from_any_thread(self, location: Location, message: Message) -> int:
        if self.kernel.on_loop_thread():
            return 0 if self.post(location, message) else -1
        self.kernel.call(self.post, location, message)
        return 0

    async def request(
        self,
        location: Location,
        op: str,
        fields: dict[str, Any],
        payload: bytes | None = None,
        timeout: float | None = None,
    ) -> Message | None:
        """Send a request and wait for its reply (None on timeout or if the peer is gone)."""
        rid = next(self._rids)
        future: asyncio.Future[Message | None] = self.loop.create_future()
        self._replies[rid] = (future, location)
        if not self.post(location, Message(op, rid, fields, payload)):
            del self._replies[rid]
            return None
        timer = None if timeout is None else self.loop.call_later(timeout, _expire, future, None)
        try:  # as the caller's own wait: its reply wakes it in the read's own loop turn
            return await wait_own(future)
        finally:
            self._replies.pop(rid, None)
            if timer is not None:
                timer.cancel()

    def take_reply(self, message: Message) -> None:
        entry = self._replies.pop(message.rid, None)
        if entry is not None and not entry[0].done():
            self.kernel.complete(entry[0], message)  # its waiter runs in this loop turn

    def reply(
        self, peer: Peer, rid: int, fields: dict[str, Any], payload: bytes | None = None
    ) -> None:
        if rid:
            self.post(peer.location, Message("reply", rid, fields, payload))

    def dispatch(self, link: Link, message: Message) -> None:
        if self.intake is not None:  # on a transport thread: what waits for the core
            self.intake.took(link, message)
        peer = link.peer
        fences = self.fences
        if peer is not None and fences.limits and not fences.admits(peer.location, message):
            if message.rid and message.op != "reply":
                self.reply(peer, message.rid, {"r": -1, "e": "incarnation written off"})
            return
        handler = self.dispatch_table.get(message.op)
        if handler is None:
            if on_link_message(link, message):  # ping, pong, link_retired: on this link
                return
            logger.warning("%s sent %r, which this process does not handle", link.peer, message.op)
            self.reply(link.peer, message.rid, {"r": -1, "e": f"unsupported op {message.op}"})
            return
        try:
            handler(link.peer, message)
        except Exception as exc:  # a malformed field or a handler bug: this message only
            logger.warning("cannot handle %r from %s: %r", message.op, link.peer, exc)
            if message.rid and message.op != "reply":
                self.reply(link.peer, message.rid, {"r": -1, "e": f"cannot handle: {exc!r}"})

    # -- what remote coroutine handles need (send and deliver: `RemoteSends`) ---------------

    def terminate(self, coro: Coro) -> int:
        """Ask the coroutine's process to terminate it; a process whose loop is stuck in
        user code also hears of it by UDP (`Liveness.terminating`)."""
        location, coro_id = coro.home_location, coro.id
        result = self.post_from_any_thread(location, Message("terminate", 0, {"c": coro_id}))
        if result == 0:
            self.kernel.call(self.liveness.terminating, location, coro_id)
        return result

    def throw(self, coro: Coro, error: BaseException) -> int:
        payload = handlers.dumps_exception(error)
        return self.post_from_any_thread(
            coro.home_location, Message("throw", 0, {"c": coro.id}, payload)
        )

    async def monitor(self, monitor: Coro, observed: Coro) -> int:
        await self.started()
        payload = DUMPS(monitor, PROTOCOL)
        reply = await self.request(
            observed.home_location, "monitor", {"c": observed.id}, payload, FIRE_AND_FORGET_TIMEOUT
        )
        if reply is None or reply.fields.get("r", -1) != 0:
            return -1
        peer = self.peers.get(observed.home_location)
        if peer is not None and not reply.fields.get("ended"):  # else its end is on the way
            peer.watch(observed, monitor)
        return 0

    def send_monitor_exception(self, monitor: Coro, observed: Coro, info: tuple[Any, ...]) -> None:
        fields, payload = handlers.encode_exit(observed, info)
        fields["m"] = monitor.id
        self.post(monitor.home_location, Message("notify_exit", 0, fields, payload))

    async def locate(self, kind: str, name: str, location: Any, timeout: float | None) -> Any:
        await self.started()
        return await self.lookups.locate(kind, name, location, timeout)

    # -- peers by hand ----------------------------------------------------------------------

    async def on_core(self, awaitable: Awaitable[T]) -> T:
        """Await a core awaitable (a local channel's ``deliver``) from this loop: on the
        core loop when that is another one."""
        if self.core_loop is self.loop:
            return await awaitable

        async def runner() -> T:
            return await awaitable

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(runner(), self.core_loop))

    async def peer(
        self, loc: Any, udp_port: int = 0, stream_send: bool = False, broadcast: bool = False
    ) -> int:
        await self.started()
        if isinstance(loc, Location):
            if loc == self.location:
                return 0
            peer = self.peer_at(loc)
            if peer.link is not None:
                return 0
            if peer.dialing is None:  # else join that dial: one link, not a duplicate
                peer.dialing = self.loop.create_task(self._redial(peer, (0.0,)))
            await asyncio.shield(peer.dialing)
            return 0 if peer.link is not None else -1
        if isinstance(loc, str):
            if self.discovery is None:
                return -1
            return int(self.discovery.introduce(loc, udp_port or self.udp_port, broadcast))
        raise TypeError(f"peer() needs a Location or a host name, not {loc!r}")


def make_network(
    kernel: AsynCoro, options: dict[str, Any], own_thread: bool = False
) -> NetworkRuntime:
    """The network of ``kernel``: on the kernel's loop, or on a transport thread of its own
    when ``own_thread``. ``DISCORO_NET_THREAD``, when set, decides for every process: 1 a
    transport thread, 0 none (to compare, or to rule the thread out when hunting a bug)."""
    forced = os.environ.get(NET_THREAD_ENV, "").strip()
    if forced:
        own_thread = forced != "0"
    if own_thread:
        from discoro.net.threaded import ThreadedNetwork

        return ThreadedNetwork(kernel, options)
    return Network(kernel, options)


def make_threaded_network(kernel: AsynCoro, options: dict[str, object]) -> NetworkRuntime:
    """`make_network` on a transport thread (the factory a server process installs)."""
    return make_network(kernel, options, own_thread=True)
