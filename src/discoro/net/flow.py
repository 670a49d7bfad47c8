"""Back-pressure on user sends: how a fast sender is slowed without `send` ever blocking.

A link's `SendHolds.queued_bytes` counts what was sent through it and has not reached the
socket yet (frames waiting unsealed in its lanes plus the transport's write buffer). When a
coroutine's `send` leaves more than `SEND_HIGH` queued, the network gives the coroutine a
`hold`: the driver makes it wait at its next suspension point (its next yield or await of a
discoro call, ``sleep(0)`` included) until the link has drained to `SEND_LOW`. A sender on
another thread waits in `send` itself, at most `THREAD_SEND_TIMEOUT` seconds.

Only the senders that fill the link are held: while a link is over `SEND_HIGH`, what each
coroutine sends through it is charged to that coroutine (`Charges`), and a coroutine is held
once its charge passes `HOLD_SHARE`; the charges are forgotten when the link drains to
`SEND_LOW`. So a coroutine that sends a small message now and then (a ping-pong beside a
1 MiB stream on the same link) goes on at once, rather than waiting behind the stream's
megabytes for the link to drain (tens of milliseconds), while the stream is held as before.

Invariants:
- Every hold ends: it is completed when the link, after a write, has at most `SEND_LOW`
  queued, or when the link is lost (the link keeps its transport's limits below `SEND_LOW`,
  so a link whose lanes are empty is always under it).
- A sender's memory is bounded by `SEND_HIGH` plus `HOLD_SHARE` per coroutine sending
  through the link plus what each sends between two suspension points, whatever the
  receiver does.
- Holds never touch control traffic: replies, pings and `CONTROL_TYPES` messages (pulses)
  are queued at once and go ahead of queued user data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import asyncio

    from discoro.wire.connection import Connection

#: A sender is held when a link has more than SEND_HIGH bytes queued, until it has at most
#: SEND_LOW. Module knobs, read at each check (a link sets its transport's limits from
#: SEND_LOW when it connects).
SEND_HIGH, SEND_LOW = 16 * 1024 * 1024, 8 * 1024 * 1024
#: Bytes a coroutine may send through a link over SEND_HIGH before it is held (counted until
#: the link drains to SEND_LOW): a sender of small messages now and then is not held for
#: someone else's backlog.
HOLD_SHARE = 64 * 1024
#: Seconds a `send` from a thread other than the loop's waits for room before it fails.
THREAD_SEND_TIMEOUT = 10.0
#: Message types that liveness depends on (pulses): `send` and `deliver` put them on the
#: control lane, ahead of queued user data, and never hold or wait for room on their account.
CONTROL_TYPES: set[type] = set()

_T = TypeVar("_T", bound=type)


def travels_first(cls: _T) -> _T:
    """Class decorator: messages of ``cls`` travel on the control lane (`CONTROL_TYPES`).
    They may overtake user data sent before them to the same process: only for messages
    whose order relative to user data does not matter (pulses)."""
    CONTROL_TYPES.add(cls)
    return cls


class Charges:
    """What each coroutine sent through a link while it was over `SEND_HIGH`, since it last
    drained to `SEND_LOW` (one thread only: the link's loop, or the core's)."""

    __slots__ = ("_sent",)

    def __init__(self) -> None:
        self._sent: dict[object, int] = {}

    def __bool__(self) -> bool:
        return bool(self._sent)

    def charge(self, sender: object, size: int) -> bool:
        """Charge ``size`` bytes to ``sender``; True once its charge passes `HOLD_SHARE`
        (it is to be held)."""
        total = self._sent.get(sender, 0) + size
        self._sent[sender] = total
        return total > HOLD_SHARE

    def clear(self) -> None:
        self._sent.clear()


class SendHolds:
    """The back-pressure half of a `Link` (which sets these attributes)."""

    conn: Connection
    transport: asyncio.Transport | None
    lost: asyncio.Future[None]
    _loop: asyncio.AbstractEventLoop
    _holds: list[asyncio.Future[None]]
    charges: Charges

    @property
    def queued_bytes(self) -> int:
        """Bytes sent through this link and not yet handed to the socket: frames waiting in
        its lanes (unsealed) plus the transport's write buffer."""
        transport = self.transport
        buffered = 0 if transport is None else transport.get_write_buffer_size()
        return self.conn.queued + buffered

    def over_high(self) -> bool:
        """Whether a sender should be held (more than `SEND_HIGH` queued); `queued_bytes`
        inlined, as this runs after every send."""
        queued = self.conn.queued
        transport = self.transport
        if transport is not None:
            queued += transport.get_write_buffer_size()
        return queued > SEND_HIGH

    def hold(self) -> asyncio.Future[None]:
        """A future completed once this link has drained to `SEND_LOW` (or is gone)."""
        future: asyncio.Future[None] = self._loop.create_future()
        if self.lost.done():
            future.set_result(None)
        else:
            self._holds.append(future)
        return future

    async def room(self) -> None:
        """Wait until this link has drained to `SEND_LOW` (or is gone)."""
        if self.queued_bytes > SEND_LOW and not self.lost.done():
            await self.hold()

    def _check_holds(self) -> None:
        """After a write: release the held senders (and forget the charges) if the link has
        drained far enough."""
        if self.queued_bytes <= SEND_LOW:
            self._release_holds()

    def _release_holds(self) -> None:
        self.charges.clear()
        holds, self._holds = self._holds, []
        for future in holds:
            if not future.done():
                future.set_result(None)
