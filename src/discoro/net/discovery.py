"""`Discovery`: find the other processes of this cluster with UDP datagrams (reference 2.5).

Theory of operation:
- Every process on a host binds one UDP socket to ``('', udp_port)`` with SO_REUSEADDR and
  SO_REUSEPORT, so they all share the port, and SO_BROADCAST. It must be the wildcard
  address: on Linux a socket bound to a unicast address (127.0.0.1 included) never receives
  the subnet's broadcasts.
- `start` announces this process (an `Announcement`: cluster tag, name, TCP location, sid,
  signed and timestamped, see `wire.discovery`) to the broadcast address of the interface it
  is bound to (127.255.255.255 on loopback, never 255.255.255.255), a few times within two
  seconds (`ANNOUNCE_DELAYS`, each datagram signed afresh) to survive loss, and then stays
  quiet: the links' pings detect failures, not discovery. A process that wants to be found
  again after a partition (a server process) calls `keep_announcing`: it then goes on
  announcing on the same broadcast address with backoff (`discoro.net.reannounce`: 1 s
  doubling to 30 s), and `keep_announcing` again (something changed: it lost its
  scheduler, its computation closed) starts the backoff over.
- A broadcast reaches every socket sharing the port on each host, ours included (our own sid
  is ignored); a unicast datagram reaches only one of them. So a datagram that asks to be
  relayed (``relay=True``: an introduction by `introduce`, or a reply) is forwarded, with
  relay off, to 127.255.255.255 on the same port, which every process on this host hears;
  with ``rebroadcast=True`` it is also broadcast on our own network.
- Ports: a process listens on its own ``udp_port`` and announces to ``announce_port``
  (default: the same), so a node on 51351 can announce to schedulers on 51350 (later
  versions' split); replies go to the port the announcement names. With
  ``announce_interval`` (seconds) a process announces again at that fixed period for as
  long as it runs, instead of the backoff (the programs' ``--ping_interval``).
- Who dials: of two processes that do not know each other, the one with the smaller sid
  dials (once, through the `DialGate`); the other replies with its own announcement (relayed, so it
  reaches the announcer whichever port-sharing socket gets it), and the announcer dials.
  If there is still no link `REPLY_GRACE` seconds after a reply (lost, or taken by a socket
  of another cluster or program sharing the port), the larger side dials as well; the
  network keeps one link when both sides dial.
- Dialling is guarded (`DialGate`): rate-limited per announcing source and in total, one
  attempt per announcement, and a location that failed is backed off exponentially.

Invariants:
- Nothing received is unpickled: `wire.discovery` decodes msgpack with a size limit and
  checks the cluster tag and the MAC before anything else. Only a correctly signed datagram
  made within the replay window, and not seen before (its MAC is remembered for the window),
  can lead to a connection or a datagram sent.
- A bad datagram never raises out of here. Each kind of problem (another cluster, forged,
  outside the replay window, another protocol version, malformed) is logged in one line, once
  per sender address (at most `MAX_LOGGED` such lines in all); refused dials and failed
  dials go through a `SummaryLog`.
- Every send is bounded: `start` and `introduce` send ``len(ANNOUNCE_DELAYS)`` datagrams;
  re-announcement sends one datagram per backoff step (at most one a second, one per 30 s
  once settled), only to our own network's broadcast address; a
  reply goes at most once per `REPLY_INTERVAL` per announcer; a relayed datagram causes at
  most two forwarded ones, which have relay off and so are never forwarded again.
- Runs on the kernel's loop thread only (like the rest of `Network`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from discoro.core.log import logger
from discoro.errors import ForeignCluster, ProtocolError, VersionMismatch
from discoro.net.addresses import LOOPBACK_BROADCAST, broadcast_address
from discoro.net.dialgate import DialGate
from discoro.net.location import Location
from discoro.net.ratelimit import SummaryLog
from discoro.net.reannounce import Reannouncer
from discoro.wire.discovery import (
    MAX_DATAGRAM_SIZE,
    REPLAY_WINDOW,
    Announcement,
    ForgedAnnouncement,
    StaleAnnouncement,
    datagram_mac,
    decode_announcement,
    discovery_keys,
    encode_announcement,
    keys_from_master,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from discoro.net.network import Network

__all__ = ["ANNOUNCE_DELAYS", "REPLY_GRACE", "REPLY_INTERVAL", "Discovery"]

#: Pauses before each announcement of `start` and `introduce` (three datagrams in 2 s).
ANNOUNCE_DELAYS = (0.0, 0.5, 1.5)
#: At most one reply per announcer within this many seconds.
REPLY_INTERVAL = 1.0
#: After replying, dial the announcer ourselves if it has not dialled us by then.
REPLY_GRACE = 3.0
#: Remember this many (problem, sender) pairs already logged; beyond that, stop logging.
MAX_LOGGED = 256
#: Remember at most this many recent datagrams (their MACs) to drop duplicates.
MAX_SEEN = 8192

Address = tuple[str, int]


def _shared_socket(port: int) -> socket.socket:
    """A UDP socket on ``('', port)`` that the host's other processes can share."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind(("", port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _dialable(text: str) -> bool:
    """Whether ``text`` is an IPv4 address a process can listen at (so never a name, which
    would need a DNS look-up on the loop, and no broadcast or multicast address)."""
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return not (address.is_unspecified or address.is_multicast or address == _ALL_ONES)


_ALL_ONES = ipaddress.IPv4Address("255.255.255.255")


class Discovery(asyncio.DatagramProtocol):
    """The discovery service of one `Network` (see the module docstring)."""

    def __init__(self, net: Network) -> None:
        self.net = net
        master = getattr(net, "master_key", None)  # where the network keeps it stretched
        self.keys = keys_from_master(master) if master else discovery_keys(net.secret)
        self.tag = self.keys.tag
        self.gate = DialGate()
        self.log = SummaryLog(net.loop, logger, level=logging.INFO)
        self._seen: dict[bytes, float] = {}  # MAC of a datagram handled -> when it expires
        self._dialing: set[Location] = set()
        self.broadcast_to: str | None = None  # our network's broadcast address, if any
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._replied: dict[str, float] = {}  # announcer sid -> when we last replied
        self._logged: set[tuple[str, str]] = set()
        self._reannouncer: Reannouncer | None = None  # made by `keep_announcing`
        self._reannounce_wanted = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the shared port and announce this process (bounded, in the background)."""
        net = self.net
        try:
            self._datagram()
        except ValueError as exc:  # e.g. a name too long for a datagram
            logger.warning("discovery is off: cannot announce this process: %s", exc)
            return
        try:
            sock = _shared_socket(net.udp_port)
        except OSError as exc:
            logger.warning("discovery is off: cannot bind UDP port %s: %s", net.udp_port, exc)
            return
        await net.loop.create_datagram_endpoint(lambda: self, sock=sock)
        try:
            self.broadcast_to = broadcast_address(socket.gethostbyname(net.node))
        except (OSError, ValueError) as exc:
            logger.warning("discovery will not broadcast from %s: %s", net.node, exc)
            return
        if net.options.get("discover_peers", True) is not False:
            self._repeat(self._datagram, (self.broadcast_to, self.announce_port))
        if self._reannounce_wanted or self.announce_interval:
            self.keep_announcing()

    @property
    def announce_port(self) -> int:
        return int(self.net.options.get("announce_port") or self.net.udp_port)

    @property
    def announce_interval(self) -> float:
        return float(self.net.options.get("announce_interval") or 0)

    def keep_announcing(self) -> None:
        """Go on announcing this process with backoff (`discoro.net.reannounce`), from its
        first pause now (again: the backoff starts over). Before `start`: from then on."""
        self._reannounce_wanted = True
        broadcast_to = self.broadcast_to
        if broadcast_to is None or self._transport is None:
            return
        if self._reannouncer is None:
            address = (broadcast_to, self.announce_port)
            period = self.announce_interval
            self._reannouncer = Reannouncer(
                self.net.loop, lambda: self._send(self._datagram(), address)
            )
            if period:
                self._reannouncer.first = self._reannouncer.limit = period
        self._reannouncer.restart()

    def announce_once(self, port: int) -> int:
        """Announce this process once more to ``port`` on our network and this host (the
        later versions' ``discover_peers``); 0, or -1 if discovery is not running."""
        if self._transport is None:
            return -1
        data = self._datagram()
        self._send(data, (LOOPBACK_BROADCAST, port))
        if self.broadcast_to not in (None, LOOPBACK_BROADCAST):
            assert self.broadcast_to is not None
            self._send(data, (self.broadcast_to, port))
        return 0

    def stop(self) -> None:
        """Stop sending and close the socket (idempotent)."""
        if self._reannouncer is not None:
            self._reannouncer.stop()
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self.log.close()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def introduce(self, host: str, udp_port: int, broadcast: bool) -> int:
        """Announce this process to the processes at ``host`` listening on ``udp_port``: the
        one that gets it relays it to its host's others and, with ``broadcast``, also
        broadcasts it on its own network. 0, or -1 if ``host`` cannot be resolved or
        discovery is not running."""
        if self._transport is None:
            return -1
        try:
            address = socket.gethostbyname(host)
        except (OSError, UnicodeError) as exc:
            logger.warning("cannot introduce this process to %s: %s", host, exc)
            return -1
        self._repeat(lambda: self._datagram(relay=True, rebroadcast=broadcast), (address, udp_port))
        return 0

    # -- asyncio callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport does not subclass DatagramTransport
        self._transport = cast("asyncio.DatagramTransport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def error_received(self, exc: Exception) -> None:
        logger.debug("discovery socket: %r", exc)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        sender = str(addr[0])
        try:
            announcement = decode_announcement(data, self.keys, time.time())
            if not _dialable(announcement.addr):
                raise ProtocolError(f"announced address {announcement.addr!r} is not dialable")
        except ForeignCluster:
            self._log_once("foreign", sender, "another cluster (a different secret)")
            return
        except ForgedAnnouncement as exc:
            self._log_once("forged", sender, str(exc))
            return
        except StaleAnnouncement as exc:
            self._log_once("stale", sender, str(exc))
            return
        except VersionMismatch as exc:
            self._log_once("version", sender, str(exc))
            return
        except ProtocolError as exc:
            self._log_once("malformed", sender, str(exc))
            return
        if self._duplicate(datagram_mac(data)):
            return  # a replay within the window (or a copy the network made)
        if announcement.relay:
            self._forward(announcement)
        if announcement.sid != self.net.sid:
            self._consider(announcement, sender)

    def _duplicate(self, mac: bytes) -> bool:
        """Whether a datagram with this MAC was handled within the window (else remember it)."""
        now = time.monotonic()
        seen = self._seen
        if mac in seen and seen[mac] > now:
            return True
        while seen:  # oldest first: expiries only grow
            oldest = next(iter(seen))
            if seen[oldest] > now and len(seen) < MAX_SEEN:
                break
            del seen[oldest]
        seen[mac] = now + 2 * REPLAY_WINDOW  # the window spans both sides of our clock
        return False

    # -- what to do about an announcement ----------------------------------------------------

    def _forward(self, announcement: Announcement) -> None:
        """Relay to the other processes on this host (and our network, if asked)."""
        data = encode_announcement(
            replace(announcement, relay=False, rebroadcast=False), self.keys.mac_key
        )
        port = self.net.udp_port
        self._send(data, (LOOPBACK_BROADCAST, port))
        if announcement.rebroadcast and self.broadcast_to not in (None, LOOPBACK_BROADCAST):
            assert self.broadcast_to is not None
            self._send(data, (self.broadcast_to, port))

    def _consider(self, announcement: Announcement, sender: str) -> None:
        net = self.net
        if net.closing or getattr(net, "ignoring_peers", False):
            return
        location = Location(announcement.addr, announcement.port)
        if location == net.location or self._known(location):
            return
        if net.sid < announcement.sid:
            logger.debug("discovered %s at %s; dialling", announcement.name, location)
            self._dial(location, sender)
            return
        now = time.monotonic()
        if now - self._replied.get(announcement.sid, -REPLY_INTERVAL) < REPLY_INTERVAL:
            return
        if len(self._replied) > MAX_LOGGED:
            self._replied = {s: t for s, t in self._replied.items() if now - t < REPLY_INTERVAL}
        self._replied[announcement.sid] = now
        logger.debug("discovered %s at %s; replying", announcement.name, location)
        self._send(self._datagram(relay=True), (announcement.addr, announcement.udp_port))
        net.loop.call_later(REPLY_GRACE, self._dial_if_unknown, location, sender)

    def _dial_if_unknown(self, location: Location, sender: str) -> None:
        if self._transport is not None and not self.net.closing and not self._known(location):
            logger.debug("no connection from %s after our reply; dialling", location)
            self._dial(location, sender)

    def _known(self, location: Location) -> bool:
        if location in self._dialing:
            return True
        peer = self.net.peers.get(location)
        return peer is not None and (
            peer.online or peer.link is not None or peer.dialing is not None
        )

    def _dial(self, location: Location, sender: str) -> None:
        """One attempt to connect to ``location`` (announced from ``sender``), if the gate
        lets us; failures back the location off."""
        refused = self.gate.check(sender, location)
        if refused:
            self.log.log(
                f"dials refused ({refused})",
                "not dialling %s, announced from %s: %s limit",
                location,
                sender,
                refused,
            )
            return
        self._dialing.add(location)

        async def dial() -> None:
            try:
                connected = await self.net.peer(location) == 0
            finally:
                self._dialing.discard(location)
            if connected:
                self.gate.succeeded(location)
                return
            delay = self.gate.failed(location)
            self.log.log(
                "failed dials",
                "cannot connect to %s (announced from %s); leaving it alone for %.0f s",
                location,
                sender,
                delay,
            )

        self._spawn(dial())

    # -- helpers --------------------------------------------------------------------------

    def _datagram(self, relay: bool = False, rebroadcast: bool = False) -> bytes:
        """Our own announcement, signed now."""
        net = self.net
        location = net.location
        if location is None or net.name is None:
            raise ValueError("the network has no location yet")
        own = Announcement(
            tag=self.tag,
            time=time.time(),
            name=net.name,
            addr=location.addr,
            port=location.port,
            udp_port=net.udp_port,
            sid=net.sid,
            relay=relay,
            rebroadcast=rebroadcast,
        )
        return encode_announcement(own, self.keys.mac_key)

    def _send(self, data: bytes, address: Address) -> None:
        assert len(data) <= MAX_DATAGRAM_SIZE
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        try:
            transport.sendto(data, address)
        except OSError as exc:  # asyncio reports most errors to error_received instead
            logger.debug("discovery datagram to %s:%s not sent: %r", *address, exc)

    def _repeat(self, make: Callable[[], bytes], address: Address) -> None:
        """Send ``make()`` to ``address`` once per `ANNOUNCE_DELAYS` entry, in the
        background (each one signed afresh, so the receivers' duplicate check keeps none)."""

        async def repeat() -> None:
            for delay in ANNOUNCE_DELAYS:
                if delay:
                    await asyncio.sleep(delay)
                self._send(make(), address)

        self._spawn(repeat())

    def _spawn(self, job: Coroutine[object, object, None]) -> None:
        task = self.net.loop.create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _log_once(self, problem: str, sender: str, why: str) -> None:
        key = (problem, sender)
        if key in self._logged or len(self._logged) > MAX_LOGGED:
            return
        self._logged.add(key)
        if len(self._logged) > MAX_LOGGED:
            logger.warning("too many senders of bad discovery datagrams: no longer logged")
            return
        level = logger.info if problem == "foreign" else logger.warning
        level("ignoring discovery datagrams from %s: %s (logged once per sender)", sender, why)
