"""Liveness that user code cannot block: heartbeats from a thread, over UDP (DESIGN 7, D10).

A process runs user coroutines on its one event loop; a job that computes or sleeps without
yielding stops the loop, and with it every TCP ping, pulse and reply. So that such a process
is not written off while it lives, discoro keeps liveness beside the loop:

- Every process listens for liveness datagrams (`wire.liveness`) on the UDP port with the
  number of its TCP port, at the address its TCP server is bound to (`Liveness`, on the
  loop). A valid ``alive`` note from a peer we have a link to, from that very process (its
  sid), counts as a sign of life on that link (`Link.heard`) and goes to the ``watchers``
  (the scheduler feeds it to its process table like a pulse). If the port is taken, one
  warning says so and the process only loses this protection.
- A process that runs user code (a server; a client once it schedules a computation)
  starts a `HeartbeatThread`: while its loop has not run for half a ``ping_interval``, it
  sends, once a ``ping_interval``, an ``alive`` note to every peer it had a link to when its
  loop last ran, saying how long ago that was (``stuck``). "The loop" is the one user code
  runs on, the core loop: when the network has a transport thread of its own
  (`discoro.net.transport_thread`), the beat runs there, not on the network's loop. While
  the loop runs, the thread is quiet: TCP pings and pulses say the process lives. When the
  loop runs again after the thread said it was stuck, an ``alive`` note with ``stuck`` 0.0
  says so at once, and again at the next beat in case one is lost (the scheduler places
  runs there again: `discoro.cluster.loop_watch`). A stopped (SIGSTOP) process stops its
  thread too, and a partition stops the datagrams: both are still noticed, as they should
  be.
- Runaway jobs: `Network.terminate` of a coroutine at a peer that reported a command port also
  sends ``terminate`` notes there (a few, for loss). The thread remembers when the first one
  came; if the loop has not run at all `grace` seconds later (the TCP terminate cannot have
  been handled), it calls its ``on_wedged`` hook with those coroutines (a server sends
  ``ending`` notes and kills its own process: `discoro.cluster.server_liveness`). If the loop
  ran meanwhile, the request is forgotten: the terminate reached the coroutine normally, or
  will at its next yield. A process is never ended because its loop is busy: only when asked
  to terminate a coroutine there.

Invariants: nothing received is unpickled; forged, stale (outside the replay window) and
replayed (a copy within it) datagrams are dropped, each kind logged once per sender. The
thread shares with the loop only floats and a tuple it reads whole (``loop_ran``,
``targets``, written by the loop's beat). Sends are bounded: one note per peer per interval
(only while the loop is stuck) and two when it runs again, four per terminate, three per
ending.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, cast

from discoro.core.log import logger
from discoro.errors import ProtocolError
from discoro.net.location import Location
from discoro.wire.liveness import (
    LivenessNote,
    ReplayGuard,
    decode_liveness,
    encode_liveness,
    liveness_key,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from discoro.net.network import Network

#: The loop notes that it runs this often (what ``stuck`` is measured against).
BEAT_PERIOD = 0.2
#: `terminate` notes to a wedged process: sent at these delays after the terminate.
TERMINATE_DELAYS = (0.0, 0.5, 1.0, 2.0)
#: The thread says "alive" only while the loop has not run for this many ping intervals:
#: while it runs, TCP pings and pulses say so (and busy schedulers get no extra datagrams).
STUCK_AFTER = 0.5
#: A peer's ``alive`` note older than this says nothing about where to send commands.
NOTE_FRESH = 10.0
MAX_LOGGED = 256


class Liveness(asyncio.DatagramProtocol):
    """The liveness datagrams of one `Network` (see the module docstring)."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.key = liveness_key(net.master_key)
        self.guard = ReplayGuard()
        self.watchers: list[Callable[[LivenessNote], None]] = []
        self.known: dict[Location, tuple[LivenessNote, float]] = {}  # latest alive note, when
        self.loop_ran = time.monotonic()  # written by the loop's beat, read by the thread
        self.targets: tuple[Location, ...] = ()  # peers with a link, as of the latest beat
        self.thread: HeartbeatThread | None = None
        self.beating = False  # the loop notes when it runs (a heartbeat thread reads it)
        self.host = "0.0.0.0"  # the address the TCP server is bound to (set by `start`)
        self._transport: asyncio.DatagramTransport | None = None
        self._beat_timer: asyncio.TimerHandle | None = None
        self._logged: set[tuple[str, str]] = set()

    # -- lifecycle (loop thread) -------------------------------------------------------------

    async def start(self, host: str, port: int) -> None:
        """Listen at UDP ``host``:``port`` (the TCP server's address and port)."""
        self.host = host
        try:
            await self.net.loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        except OSError as exc:
            logger.warning(
                "liveness datagrams cannot be received at UDP %s:%s (%s): a peer whose loop "
                "is busy in user code may be written off",
                host,
                port,
                exc,
            )

    def start_heartbeat(
        self, grace: float = 0.0, on_wedged: Callable[[list[int], float], None] | None = None
    ) -> None:
        """Start the heartbeat thread (once), and the loop's beat it reads. ``on_wedged``
        (called in the thread) handles coroutines asked to terminate while the loop stayed
        stuck for ``grace`` seconds; without it the thread takes no commands (a client)."""
        if self.thread is not None or self.net.location is None:
            return
        try:
            thread = HeartbeatThread(self, grace, on_wedged)
        except OSError as exc:
            logger.warning(
                "no heartbeat thread (cannot bind UDP at %s: %s): while user code keeps "
                "this process's loop busy, its peers may write it off",
                self.host,
                exc,
            )
            return
        self.beating = True
        self._beat()
        self.thread = thread
        thread.start()

    def stop(self) -> None:
        self.beating = False
        timer, self._beat_timer = self._beat_timer, None
        if timer is not None:
            if self.net.core_loop is self.net.loop:
                timer.cancel()
            else:  # the beat's timer is the core loop's
                with contextlib.suppress(RuntimeError):  # that loop is closed already
                    self.net.core_loop.call_soon_threadsafe(timer.cancel)
        if self.thread is not None:
            self.thread.stop()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _beat(self) -> None:
        """(The core loop.) Note that it runs, again every `BEAT_PERIOD` seconds."""
        if not self.beating:
            return
        self.loop_ran = time.monotonic()
        self.linked()
        self._beat_timer = self.net.core_loop.call_later(BEAT_PERIOD, self._beat)

    def linked(self) -> None:
        """Take the peers with a link as the heartbeat's targets (at every beat, and when a
        link comes up: a job may block the loop right after its reply went out)."""
        if self.beating:
            peers = list(self.net.peers.items())  # one copy: another thread may change it
            self.targets = tuple(loc for loc, peer in peers if peer.link is not None)

    # -- receiving ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.DatagramTransport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def error_received(self, exc: Exception) -> None:
        logger.debug("liveness socket: %r", exc)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        note = self.take(data, str(addr[0]))
        if note is None or note.kind == "terminate":
            return  # commands go to a thread's own socket, not here
        location = Location(note.addr, note.port)
        peer = self.net.peers.get(location)
        if peer is None or peer.sid != note.sid:
            return  # not a peer of ours, or an earlier process at that address
        if peer.link is not None:
            peer.link.heard()
        if note.kind == "alive":
            if len(self.known) > 2 * len(self.net.peers) + 16:
                self.known = {loc: v for loc, v in self.known.items() if loc in self.net.peers}
            self.known[location] = (note, time.monotonic())
        for watcher in list(self.watchers):  # an upper layer's: on the core's loop
            self.net.kernel.run_local(_watch, watcher, note)

    def heard_within(self, location: Location, seconds: float) -> bool:
        """Whether the peer at ``location`` said it lives within the last ``seconds``."""
        entry = self.known.get(location)
        return entry is not None and time.monotonic() - entry[1] <= seconds

    def take(
        self, data: bytes, sender: str, guard: ReplayGuard | None = None
    ) -> LivenessNote | None:
        """The note in ``data`` if it is valid, fresh and not a copy (else None, logged
        once per kind of problem and sender). ``guard``: the caller's own (a thread's)."""
        try:
            note = decode_liveness(data, self.key, time.time())
        except ProtocolError as exc:
            self._log_once(type(exc).__name__, sender, str(exc))
            return None
        if not (guard or self.guard).fresh(data, time.monotonic()):
            self._log_once("replay", sender, "a copy of a liveness datagram taken before")
            return None
        return note

    def _log_once(self, problem: str, sender: str, why: str) -> None:
        key = (problem, sender)
        if key in self._logged or len(self._logged) >= MAX_LOGGED:
            return
        self._logged.add(key)
        logger.warning("ignoring liveness datagrams from %s: %s (logged once)", sender, why)

    # -- terminate escalation (loop thread) ---------------------------------------------------

    def terminating(self, location: Location, coro_id: int) -> None:
        """A terminate of coroutine ``coro_id`` at ``location`` was sent: if that process
        has a heartbeat thread that takes commands, tell it too (see the module docstring).
        Each of the few notes looks for the process's latest ``alive`` note when it is due:
        a process whose loop got stuck just now has not sent one yet."""

        def send() -> None:
            entry = self.known.get(location)
            peer = self.net.peers.get(location)
            if entry is None or peer is None or self._transport is None:
                return
            note, when = entry
            if not note.cmd_port or time.monotonic() - when > NOTE_FRESH or peer.sid != note.sid:
                return
            request = LivenessNote(
                "terminate", time.time(), note.sid, note.addr, note.port, note.pid, coros=(coro_id,)
            )
            self._transport.sendto(encode_liveness(request, self.key), (note.addr, note.cmd_port))

        for delay in TERMINATE_DELAYS:
            self.net.loop.call_later(delay, send)


def _watch(watcher: Callable[[LivenessNote], None], note: LivenessNote) -> None:
    try:
        watcher(note)
    except Exception:
        logger.exception("liveness watcher %r failed", watcher)


class HeartbeatThread(threading.Thread):
    """Sends ``alive`` notes and takes ``terminate`` commands for one process (see the
    module docstring); a daemon thread that needs no event loop."""

    def __init__(
        self,
        liveness: Liveness,
        grace: float,
        on_wedged: Callable[[list[int], float], None] | None,
    ) -> None:
        super().__init__(name="discoro-liveness", daemon=True)
        net = liveness.net
        assert net.location is not None
        self.liveness = liveness
        self.grace = grace
        self.on_wedged = on_wedged
        self.interval = net.ping_interval
        self.location = net.location
        self.sid = net.sid
        self.pid = os.getpid()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((liveness.host, 0))
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.cmd_port = int(self.sock.getsockname()[1]) if on_wedged is not None else 0
        self.pending: dict[int, float] = {}  # coroutine id -> when its terminate note came
        self.guard = ReplayGuard()  # its own: the loop's is not shared across threads
        self.said_stuck = False  # alive notes went out since the loop last ran
        self.say_running = False  # the loop runs again: say so at the next beat too
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        next_beat = 0.0
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                stuck = now - self.liveness.loop_ran >= STUCK_AFTER * self.interval
                if now >= next_beat:
                    if stuck:
                        self._send_all(self._note("alive", now))
                        self.said_stuck, self.say_running = True, False
                    elif self.say_running:  # once more, in case the first was lost
                        self.say_running = False
                        self._send_all(self._note("alive", now, running=True))
                    next_beat = now + self.interval
                if self.said_stuck and not stuck:
                    self.said_stuck, self.say_running = False, True
                    self._send_all(self._note("alive", now, running=True))  # at once
                readable, _, _ = select.select([self.sock], [], [], min(next_beat - now, 0.25))
                if readable:
                    self._receive()
                self._check_pending(time.monotonic())
        finally:
            self.sock.close()

    def _note(
        self, kind: str, now: float, coros: tuple[int, ...] = (), running: bool = False
    ) -> LivenessNote:
        stuck = 0.0 if running else max(0.0, now - self.liveness.loop_ran)
        return LivenessNote(
            kind,
            time.time(),
            self.sid,
            self.location.addr,
            self.location.port,
            self.pid,
            stuck=stuck,
            cmd_port=self.cmd_port,
            coros=coros,
        )

    def _send_all(self, note: LivenessNote) -> None:
        data = encode_liveness(note, self.liveness.key)
        for target in self.liveness.targets:
            with contextlib.suppress(OSError):  # unreachable, buffer full: next beat again
                self.sock.sendto(data, (target.addr, target.port))

    def _receive(self) -> None:
        try:
            data, addr = self.sock.recvfrom(2048)
        except OSError:
            return
        note = self.liveness.take(data, str(addr[0]), self.guard)
        if note is None or note.kind != "terminate" or self.on_wedged is None:
            return
        ours = (note.addr, note.port, note.sid, note.pid) == (
            self.location.addr,
            self.location.port,
            self.sid,
            self.pid,
        )
        if ours:
            now = time.monotonic()
            for coro_id in note.coros:
                self.pending.setdefault(coro_id, now)

    def _check_pending(self, now: float) -> None:
        due = [cid for cid, since in self.pending.items() if now - since >= self.grace]
        if not due:
            return
        loop_ran = self.liveness.loop_ran
        wedged = [cid for cid in due if loop_ran < self.pending[cid]]
        for cid in due:
            del self.pending[cid]
        if wedged and self.on_wedged is not None:
            self.on_wedged(wedged, now - loop_ran)

    def send_ending(self, coros: list[int]) -> None:
        """Tell every peer (three times, for loss) that this process ends itself because
        ``coros`` were terminated while its loop was stuck."""
        for _ in range(3):
            self._send_all(self._note("ending", time.monotonic(), tuple(coros)))
            time.sleep(0.02)
