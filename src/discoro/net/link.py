"""`Link`: one authenticated TCP (or TLS) stream to a peer, as an asyncio protocol.

The link is the I/O shell around `wire.Connection`: bytes in, messages out to its owner (the
`Network`, through ``network.dispatch``), messages in, bytes out. It knows nothing of what
messages mean.

Invariants:
- Nothing but handshake frames is exchanged before `HandshakeComplete`; a protocol error
  closes the stream after exactly one log line (and, during the handshake, a REFUSE frame
  that says why), and never disturbs other links. A connection that has not authenticated
  within `HANDSHAKE_TIMEOUT` seconds is dropped (one log line), however slowly it trickles.
- Messages are handed to the network in the order they arrived; every complete message of
  a received chunk is decoded and dispatched in one loop (``Connection.process``). The
  coroutines the chunk woke run right after it, in the same loop turn (the kernel's
  ``begin_read``/``end_read``, `core.wakeups`), once its replies are written.
- The link is an ``asyncio.BufferedProtocol``: the transport reads straight into the
  connection's receive buffer (no bytes object per read) and a large payload straight into
  the bytearray it is handed up in.
- Every byte after the handshake travels in AEAD records (`wire.record`): the link only
  queues messages and writes what ``Connection.seal`` makes. A record that fails (tampered,
  replayed, dropped, injected) closes the link with one log line; nothing in it is decoded.
- Lanes: replies, pings, pongs and messages of the types `flow.travels_first` marks
  (`CONTROL_OPS`) go on the control lane, everything else on the data lane, from which the
  connection moves large messages to the bulk lane (`wire.record`: 64 KiB fragments
  alternating with data records; order kept per destination coroutine). Each batch of
  records is sealed control-first, so control overtakes queued user data (and, between two
  records of it, a large data frame). Within a lane, frames go out in the order `send` was
  called. The transport's limits are small (`WRITE_HIGH`), so a backlog waits in the lanes,
  where it can still be overtaken, rather than in the transport, where it cannot; and the
  socket is tuned (`net.link_socket`: a small unsent mark, a capped receive buffer on a near
  link) so the kernels at both ends hold little of it either.
- Reads and writes in turns: after `READ_TURN` bytes a link stops reading until its loop's
  next iteration, and after `WRITE_TURN` bytes written in one go it leaves the rest for the
  next iteration, so a stream cannot keep the loop's other work waiting (a transport
  thread's hand-over from the core, replies to read or to write).
- Writes are coalesced: replies made while a received chunk is being dispatched go out in one
  write after it; outside of that, the first frame after a quiet spell is written at once
  (latency) and frames sent after it in the same loop iteration are written together in the
  next one (throughput). The first frame sent after a read (a reply by a coroutine the read
  woke) is written at once with no callback scheduled, so the loop takes no extra turn for
  it; the next frame sent before another read waits for the next iteration's write with the
  rest of its burst (so writes stay coalesced; the cost is one loop turn of latency).
- Flow control without copies: while the transport says its buffer is full
  (``pause_writing``), frames wait in the connection's lanes as references (unsealed) and
  are sealed and written when it drains (``resume_writing``), a bounded batch at a time; so
  a fast producer of large messages costs at most one batch of sealed records in the
  transport, not a transport buffer as big as the backlog. `drained` (used by ``deliver``)
  waits for that too.
- Back-pressure on user sends (`net.flow`): holds are checked whenever the link writes and
  all released when it is lost. The transport's own limits sit below ``flow.SEND_LOW``, so a
  link whose lanes are empty is always under it: every hold ends.
- A link lost with messages still queued (data lane frames not wholly sealed) tells the
  network how many it dropped (`Network.link_lost`: one log line, and the monitors of
  coroutines over there hear of it).
- Intake: a network on a transport thread stops reading a link while its core has too much
  waiting for it (`pause_intake`); the link's silence then is not the peer's, and the link
  pings the peer every interval meanwhile, since it does not answer the peer's pings.
- Liveness: any bytes received count as a sign of life, and so does a liveness datagram of
  the peer (`heard`: its loop may be busy in user code, `discoro.net.liveness`); an idle link
  is pinged every ``ping_interval`` seconds and closed after ``dead_after`` intervals of
  silence; pings are answered on the link they came on (`link_ops`). A check that runs late
  (our own loop was blocked, `core.stalls.ran_late`) gives the peer a fresh window: its
  bytes may be waiting unread in our socket.
- A link we dialled is used only if the peer authenticated as the address dialled (which,
  for discovery, is the one announced): else it is closed with one log line, so a relay
  cannot pose as another process at an address of its choosing.
- An accepted TLS connection (``tls`` given, see `accept_tls`) first runs the TLS handshake
  on the plain transport (``loop.start_tls``), so a peer that fails it (no TLS, a
  certificate the CA did not sign) is refused with one log line like any other;
  `HANDSHAKE_TIMEOUT` covers both handshakes. Bytes that arrive with the end of the TLS
  handshake wait in the connection until the link has its TLS transport.
  `connection_lost` runs once, whichever layer noticed the end.
"""

from __future__ import annotations

import asyncio
from functools import partial
from time import monotonic
from typing import TYPE_CHECKING, Any, cast

from discoro.core.log import logger
from discoro.core.stalls import ran_late
from discoro.errors import ProtocolError
from discoro.net import flow, link_socket
from discoro.net.flow import Charges, SendHolds
from discoro.net.link_ops import old_link_done
from discoro.net.local_links import peer_label
from discoro.net.send_runs import dispatch_run
from discoro.wire.connection import Connection, ConnectionState
from discoro.wire.events import NEED_DATA, ConnectionClosed, HandshakeComplete, MessageReceived
from discoro.wire.handshake import Role
from discoro.wire.messages import Message, trusted_message
from discoro.wire.record import LANE_CONTROL, LANE_DATA

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    from discoro.net.location import Location
    from discoro.net.network import Network
    from discoro.wire.identity import Identity

#: Seconds a new connection has to complete the handshake (a module knob, read per
#: connection, so tests and programs may lower it before connections are made).
HANDSHAKE_TIMEOUT = 5.0
#: Message ops that travel on the control lane (ahead of queued user data).
CONTROL_OPS = frozenset({"reply", "ping", "pong", "control_send", "control_deliver"})
#: The transport's write buffer limits (bytes): above HIGH frames wait in the link, where
#: a small message can still overtake a large one (the bulk lane); what the transport holds
#: it cannot. 512 KiB: the round trip under a 1 MiB stream is ~30 % shorter than with 4 MiB
#: and bulk throughput is the same within noise (bench/RESULTS.md).
WRITE_HIGH, WRITE_LOW = 512 * 1024, 128 * 1024
#: Bytes a link reads before it lets its loop take a turn (stops reading until the loop's
#: next iteration): the loops read as long as a socket has data, so a stream would otherwise
#: keep everything else waiting (a transport thread's hand-over from the core included).
READ_TURN = 256 * 1024
#: Bytes a link writes in one go before the rest waits for the loop's next iteration: while
#: the kernel keeps taking bytes, a backlog of MiBs would otherwise keep the loop (and the
#: replies it should read) waiting for tens of milliseconds.
WRITE_TURN = 512 * 1024
PING = trusted_message("ping")


def accept_tls(
    loop: asyncio.AbstractEventLoop, context: ssl.SSLContext | None
) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """How accepted connections get TLS: (context for each `Link` to start TLS itself, so a
    failed TLS handshake is logged; context for ``create_server`` to do it silently).

    The link does it on asyncio's own loops. uvloop starts reading right after
    ``connection_made`` whatever the protocol asks, so the first TLS bytes would reach the
    link instead of the TLS layer: there the server does TLS, and refusals go unlogged.
    """
    if context is None:
        return None, None
    if isinstance(loop, asyncio.BaseEventLoop):
        return context, None
    return None, context


def _dropped(message: Message) -> None:
    """Where a closed link's messages go (none should: it reads no more)."""


def _dropped_run(message: Message, payloads: list[bytes]) -> None:
    """... and its runs."""


class Link(SendHolds, asyncio.BufferedProtocol):
    def __init__(
        self,
        network: Network,
        role: Role,
        tls: ssl.SSLContext | None = None,
        *,
        dialled: Location | None = None,
    ) -> None:
        self.network = network
        self.dialled = dialled  # the address we dialled: the peer must authenticate as it
        self.role = role
        self.conn = Connection(role, network.master_key, network.identity)
        self.transport: asyncio.Transport | None = None
        self.peer: Any = None  # the Peer, once authenticated
        self.authenticated: asyncio.Future[Any] = network.loop.create_future()
        self.lost: asyncio.Future[None] = network.loop.create_future()
        self.retiring = False  # a duplicate on its way out (`link_ops.retire`)
        self.peer_retired = False  # ... and the peer said it retired it too
        self.retirement: asyncio.Task[None] | None = None
        self.held = False  # reads nothing until the link it took over from is done
        self.successor: Link | None = None  # ... the link waiting for this one to be done
        self.follow_timer: asyncio.TimerHandle | None = None  # (`link_ops.follow`)
        self.died_silent = False
        self.remote_address = "?"
        self._loop = network.loop
        self._spin = network.kernel.spin
        self._dispatch: Callable[[Message], None] = partial(network.dispatch, self)
        self._dispatch_run: Callable[[Message, list[bytes]], None] = partial(
            dispatch_run, network, self
        )
        self._ready = False  # authenticated: received bytes take the batch fast path
        self._flush_pending = False
        self._heard = False  # read something since `send` last wrote at once
        self._replied = False  # `send` wrote at once since the last read, scheduling nothing
        self._in_batch = False
        self._paused = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._holds: list[asyncio.Future[None]] = []  # senders waiting for SEND_LOW
        self.charges = Charges()  # what each sender sent while over SEND_HIGH
        self._last_heard = monotonic()
        self._last_check = self._last_heard  # when `_check_alive` last ran (stall discount)
        self.intake_paused = False  # reading stopped by `pause_intake`
        self._turn_read = 0  # bytes read since the loop last had a turn (`READ_TURN`)
        self._yielding = False  # reading stopped until the loop's next turn
        self._timer: asyncio.TimerHandle | None = None
        self._tls = tls  # a TLS handshake to run first (accepted connections)
        self._tls_task: asyncio.Task[None] | None = None
        self._expired = False  # dropped by the handshake timeout

    def __repr__(self) -> str:
        return f"<Link {self.role.value} {self.remote_address} peer={self.conn.peer}>"

    # -- asyncio callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do not derive from asyncio.Transport.
        transport = cast("asyncio.Transport", transport)
        self.remote_address = peer_label(transport)[1]  # "local" for a same-host Unix link
        self._timer = self._loop.call_later(HANDSHAKE_TIMEOUT, self._handshake_expired)
        if self.role is Role.SERVER:  # the front door admits it (or pushes out an older one)
            self.network.front_door.arrived(self, transport)
        if self._tls is not None:
            transport.pause_reading()  # the TLS layer must see the first bytes, not us
            self._tls_task = self._loop.create_task(self._start_tls(transport, self._tls))
            return
        self._connected(transport)

    async def _start_tls(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        self._tls = None
        try:
            secured = await self._loop.start_tls(
                transport, self, context, server_side=True, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
            )
        except Exception as exc:  # ssl.SSLError, OSError, TimeoutError, ...
            if not self._expired:  # else the handshake timeout said it already
                self.network.front_door.log.log(
                    "refused",
                    "refused TLS connection with %s: %s",
                    self.remote_address,
                    str(exc) or type(exc).__name__,
                )
            transport.close()
            self.connection_lost(exc)
            return
        if secured is None or self.lost.done():
            return
        self._connected(secured)
        self._received()  # what arrived with (or right behind) the end of the TLS handshake

    def _connected(self, transport: asyncio.Transport) -> None:
        """The stream is up (TLS included): start the discoro handshake."""
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            link_socket.tune(sock)
        high = min(WRITE_HIGH, flow.SEND_LOW // 2)  # empty lanes are always under SEND_LOW
        transport.set_write_buffer_limits(high, min(WRITE_LOW, high // 4))
        if self.role is Role.CLIENT:
            self.conn.start()
            self._write_own()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.conn.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self._last_heard = monotonic()
        self._heard, self._replied = True, False
        try:
            self.conn.buffer_updated(nbytes)
        except ProtocolError as exc:  # pragma: no cover - the link closed on the error
            self._refuse(exc)
            return
        self._received()
        self._turn_read += nbytes
        if self._turn_read >= READ_TURN:
            self._yield_turn()

    def _yield_turn(self) -> None:
        """`READ_TURN` bytes read: stop reading until the loop has run what waits for it."""
        self._turn_read = 0
        transport = self.transport
        if self._yielding or transport is None or transport.is_closing():
            return
        self._yielding = True
        transport.pause_reading()
        self._loop.call_soon(self._end_turn)

    def _end_turn(self) -> None:
        self._yielding = False
        self._resume_reading()

    def _resume_reading(self) -> None:
        """Read again, unless something else still stops it (intake, a turn, a hold)."""
        transport = self.transport
        if (
            not (self.intake_paused or self._yielding or self.held)
            and transport is not None
            and not transport.is_closing()
        ):
            transport.resume_reading()

    def hold_reading(self) -> None:
        """Read nothing until `read_again` (`link_ops.follow`): what arrived stays buffered."""
        self.held = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def read_again(self) -> None:
        """End `hold_reading`: hand up what arrived meanwhile, and read on."""
        if not self.held:
            return
        self.held = False
        self._last_heard = monotonic()  # the silence was ours
        if self.transport is None or self.transport.is_closing():
            return
        self._received()
        self._resume_reading()

    def eof_received(self) -> bool:
        try:
            self.conn.receive_data(b"")
        except ProtocolError as exc:  # pragma: no cover - the link closed on the error
            self._refuse(exc)
            return False
        self._received()
        return False

    def _received(self) -> None:
        """Hand up whatever the bytes (or EOF) just received complete."""
        if self.transport is None or self.held:
            return  # TLS is up but `_start_tls` has not resumed yet (it will call us), or
            # the link waits for the one it took over from (`read_again` will)
        if not self._ready:
            self._handshake_events()
            return
        kernel = self.network.kernel
        kernel.begin_read()
        self._in_batch = True
        try:
            if not self.conn.process(self._dispatch, self._dispatch_run):
                self.close()
        except ProtocolError as exc:
            self._refuse(exc)
        finally:
            self._in_batch = False
            if self.conn.queued and not self._flush_pending:
                self._flush()
            kernel.end_read()  # the coroutines the chunk woke run now, in this loop turn

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost.done():
            return  # already told (a failed TLS handshake is reported by both layers)
        if self._timer is not None:
            self._timer.cancel()
        self._can_write.set()
        self._release_holds()
        if not self.authenticated.done():
            self.authenticated.set_exception(
                ConnectionError(f"connection to {self.remote_address} closed: {exc or 'EOF'}")
            )
            self.authenticated.exception()  # retrieved: nobody may be waiting
        if not self.lost.done():
            self.lost.set_result(None)
        if self.follow_timer is not None:
            self.follow_timer.cancel()
            self.follow_timer = None
        old_link_done(self)  # a link waiting for this one reads on
        self.network.front_door.settled(self)
        self._dispatch = _dropped  # no reference cycle (link -> partial -> link) outlives it
        self._dispatch_run = _dropped_run
        self.network.link_lost(self, self.conn.unsent(LANE_DATA))

    def pause_writing(self) -> None:
        self._paused = True
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._paused = False
        if not self._in_batch:
            self._flush()
        if not self._paused and not self.conn.queued:
            self._can_write.set()
        if self._holds or self.charges:
            self._check_holds()

    # -- the handshake --------------------------------------------------------------------

    def _handshake_events(self) -> None:
        """Bytes before (and in the chunk that completes) the handshake: the events API."""
        conn = self.conn
        try:
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    break
                if type(event) is MessageReceived:
                    self._dispatch(event.message)
                elif type(event) is HandshakeComplete:
                    if not self._is_dialled(event.peer):
                        break
                    self._write_own()
                    self._ready = True
                    self.network.front_door.settled(self)
                    if self._timer is not None:
                        self._timer.cancel()
                    self._schedule_ping()
                    self.network.link_authenticated(self, event.peer)
                    if self.held:  # the rest waits in the connection (`read_again`)
                        break
                elif type(event) is ConnectionClosed:
                    self.close()
                    break
            self._write_own()
        except ProtocolError as exc:
            self._refuse(exc)

    def _is_dialled(self, peer: Identity) -> bool:
        """Whether the peer we dialled authenticated as the address we dialled (or was
        announced at); if not, the link is closed after one log line."""
        dialled = self.dialled
        if dialled is None or (peer.addr, peer.port) == (dialled.addr, dialled.port):
            return True
        logger.warning(
            "refused connection with %s: it authenticated as %s at %s:%s, not as the address "
            "dialled (%s); a relay, or a peer that announces another address",
            self.remote_address,
            peer.name,
            peer.addr,
            peer.port,
            dialled,
        )
        self.close()
        return False

    def _refuse(self, exc: ProtocolError) -> None:
        exc.__traceback__ = None  # the connection keeps it: its frames would hold the link
        if self.peer is None:  # unauthenticated: floods of these are summarised
            self.network.front_door.log.log(
                "refused", "refused connection with %s: %s", self.remote_address, exc
            )
        else:
            logger.warning(
                "dropped connection with %s (peer %s): %s", self.remote_address, self.peer, exc
            )
        self._write_own()
        self.close()

    def _handshake_expired(self) -> None:
        if not self._ready and self.transport is not None and not self.transport.is_closing():
            self.network.front_door.log.log(
                "handshake timeouts",
                "dropped connection with %s: no handshake within %s s",
                self.remote_address,
                HANDSHAKE_TIMEOUT,
            )
            self._expired = True
            self.close()

    # -- liveness -------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        self._timer = self._loop.call_later(self.network.ping_interval, self._check_alive)

    def heard(self) -> None:
        """The peer is alive (a sign of life that did not come over this stream)."""
        self._last_heard = monotonic()

    def pause_intake(self) -> None:
        """Stop reading (this process's coroutines have too much waiting for them: its
        transport thread's back-pressure, `transport_thread.INTAKE_HIGH`); silence while
        paused is ours, not the peer's."""
        if self.transport is not None and not self.intake_paused:
            self.intake_paused = True
            self.transport.pause_reading()

    def resume_intake(self) -> None:
        if self.intake_paused:
            self.intake_paused = False
            self._last_heard = monotonic()
            self._resume_reading()

    def _check_alive(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        now = monotonic()
        if ran_late(self._last_check, now, self.network.ping_interval):
            self._last_heard = max(self._last_heard, now)
        self._last_check = now
        if self.intake_paused or self.held:
            # we do not read: the silence is ours; and the peer, whose pings we do not
            # answer, must still hear from us or it would judge us dead and drop its link
            self._last_heard = now
            self.send(PING)
            self._schedule_ping()
            return
        silent = now - self._last_heard
        if silent > self.network.ping_interval * self.network.dead_after:
            logger.warning("peer %s silent for %.1f s; closing its connection", self.peer, silent)
            self.died_silent = True
            self.transport.abort()
            return
        if silent >= self.network.ping_interval * 0.9:
            self.send(PING)
        self._schedule_ping()

    # -- sending --------------------------------------------------------------------------

    def send(self, message: Message, more: tuple[bytes | memoryview, ...] = ()) -> None:
        """Queue ``message`` (authenticated links only; ``more``: buffers that follow its
        payload, see `Connection.queue`); see the module docstring for when it is written."""
        self.conn.queue(message, LANE_CONTROL if message.op in CONTROL_OPS else LANE_DATA, more)
        self._queued()

    def send_packed(
        self,
        body: bytes,
        payload: bytes | bytearray,
        order_key: object,
        more: tuple[bytes | memoryview, ...] = (),
    ) -> None:
        """`send` of a data-lane message whose control map is packed already (see
        `Connection.queue_packed`)."""
        self.conn.queue_packed(body, payload, order_key, more)
        self._queued()

    def _queued(self) -> None:
        """After a frame was queued: write now, or once this loop iteration ends."""
        if self._flush_pending or self._in_batch:
            return
        if self._heard:
            # the first frame since a read (a reply, typically): written at once with no
            # callback scheduled, so answering costs the loop no extra turn
            self._heard = False
            self._replied = True
            self._flush()
            return
        self._flush_pending = True
        self._loop.call_soon(self._flush_soon)
        if self._replied:
            return  # frames after a reply: coalesced into one write in the next iteration
        self._flush()

    def flush_now(self) -> None:
        """Write what is queued now, rather than in the next loop iteration."""
        self._flush()

    def _flush_soon(self) -> None:
        self._flush_pending = False
        self._replied = False
        # also when a turn that ended on its budget emptied the lanes: `drained` ends here
        if self.conn.queued or not self._can_write.is_set():
            self._flush()

    def _flush(self) -> None:
        """Seal and write what is queued, a batch at a time, until the transport asks us to
        pause (the rest stays queued, unsealed) or `WRITE_TURN` bytes went out (the rest
        goes in the loop's next iteration)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._spin.touch()  # an answer may follow: poll for it a moment before sleeping
        conn = self.conn
        budget = WRITE_TURN
        while not self._paused:
            if budget <= 0:
                if not self._flush_pending:
                    self._flush_pending = True
                    self._loop.call_soon(self._flush_soon)
                break
            records = conn.seal()
            if records is None:  # empty, unpaused: `drained` ends (a turn may end it here)
                self._can_write.set()
                break
            transport.write(records)
            budget -= len(records)
        if self._holds or self.charges:
            self._check_holds()

    @property
    def has_room(self) -> bool:
        """True unless `drained` would wait."""
        return self._can_write.is_set()

    async def drained(self) -> None:
        """Wait until the stream's write buffer has room and nothing is held (back-pressure
        for `deliver`)."""
        await self._can_write.wait()  # set again only once nothing is queued

    def _write_own(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        """Close after writing everything queued (the transport writes it before closing)."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            conn = self.conn
            if conn.state is ConnectionState.AUTHENTICATED:
                while (records := conn.seal()) is not None:
                    transport.write(records)
            transport.close()
