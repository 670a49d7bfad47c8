"""`RemoteSends`: the network's half of ``send`` and ``deliver`` to remote coroutines.

What a message becomes on the wire is `payloads`' business (raw bytes, pickle 5 with buffers
out of band); how a fast sender is slowed is `flow`'s (holds, high and low-water marks).

Invariants:
- `send` never blocks the loop: a coroutine whose send left the link over
  ``flow.SEND_HIGH`` is charged for it (``flow.Charges``) and, once its charge passes
  ``flow.HOLD_SHARE``, gets a hold (it waits at its next suspension point); a sender on another
  thread waits in `send` itself, at most ``flow.THREAD_SEND_TIMEOUT`` seconds (TimeoutError),
  counting what threads sent that has not reached the loop yet (``_hopping``).
- Messages of ``flow.CONTROL_TYPES`` (pulses) go on the control lane and never wait: neither
  held nor waiting for room.
- A send on the loop thread without out-of-band buffers queues its frame with a control map
  packed once per (destination, raw or pickled, incarnation tag) and remembered (at most
  `PACKED_CONTROLS`), the same bytes `Connection.queue` would have packed for its message.
  A message of `payloads.PLAIN_TYPES` (bytes, numbers, str, None) to a link that is up takes
  a shorter way there: no fields map, no look for buffers (it can have none). A network on a
  transport thread takes the same way for such a message from the core (`post_plain`: the
  payload made in the sender's thread, the frame queued on the loop thread).
- `deliver` waits for room on the link (back-pressure) within its timeout, which that wait
  counts against.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from discoro.net import flow, payloads
from discoro.net.fencing import TAG
from discoro.net.payloads import RAW
from discoro.wire.messages import message_control, trusted_message
from discoro.wire.safepack import pack

#: `RemoteSends.send` remembers the packed control maps of at most this many destinations.
PACKED_CONTROLS = 1024
_PLAIN_TYPES = payloads.PLAIN_TYPES
_plain = payloads.plain

if TYPE_CHECKING:
    from discoro.core.coro import Coro
    from discoro.core.kernel import AsynCoro
    from discoro.net.fencing import Fences
    from discoro.net.link import Link
    from discoro.net.location import Location
    from discoro.net.payloads import Part
    from discoro.net.peers import Peer
    from discoro.wire.messages import Message


class RemoteSends:
    """Mixed into `Network` (which provides the attributes declared here)."""

    if TYPE_CHECKING:  # provided by Network
        kernel: AsynCoro
        loop: asyncio.AbstractEventLoop
        peers: dict[Location, Peer]
        fences: Fences

        def post(
            self, location: Location, message: Message, more: tuple[Part, ...] = ()
        ) -> bool: ...

        def post_from_any_thread(self, location: Location, message: Message) -> int: ...

        def open_link(self, location: Location) -> Link | None: ...

        async def started(self) -> None: ...

        async def request(
            self,
            location: Location,
            op: str,
            fields: dict[str, object],
            payload: bytes | None = None,
            timeout: float | None = None,
        ) -> Message | None: ...

    def __init__(self) -> None:
        self._hop_lock = threading.Lock()
        self._hopping = 0  # payload bytes other threads sent that the loop has not queued yet
        # (destination coroutine id, raw payload, our incarnation tag) -> packed control map
        self._packed_controls: dict[tuple[int, bool, int], bytes] = {}

    def send(self, coro: Coro, message: object) -> int:
        """Queue ``message`` for a remote coroutine; never blocks the loop: a coroutine
        whose send filled the link is held at its next suspension point (`net.flow`), a
        sender on another thread waits here for room (TimeoutError after
        ``flow.THREAD_SEND_TIMEOUT`` seconds)."""
        location = coro.home_location
        kind = type(message)
        on_loop = self.kernel.on_loop_thread()
        own = self.fences.own
        fields: dict[str, object] | None = None
        more: tuple[Part, ...] = ()
        if kind in _PLAIN_TYPES and on_loop:  # the common case: no fields map, no buffers
            payload, raw = _plain(message), kind is bytes
        else:
            fields = {"c": coro.id}
            payload, more = payloads.encode(message, fields)
            if kind in flow.CONTROL_TYPES:  # a pulse: ahead of user data, never held
                return self.post_from_any_thread(
                    location, trusted_message("control_send", 0, fields, payload)
                )
            if own:  # tagged with our incarnation now, so `Fences.tagged` need not copy it
                fields[TAG] = own
            if not on_loop:
                outgoing = trusted_message("send", 0, fields, payload)
                size = len(payload) + sum(len(part) for part in more)
                self._wait_for_room(location)
                with self._hop_lock:
                    self._hopping += size
                self.kernel.call(self._post_hopped, location, outgoing, size, more)
                return 0
            raw = RAW in fields
        link = self.open_link(location)  # one look-up, straight to it
        if link is None or more:
            if fields is None:
                fields = _send_fields(coro.id, raw, own)
            outgoing = trusted_message("send", 0, fields, payload)  # tagged above
            if link is None:
                return 0 if self.post(location, outgoing, more) else -1
            link.send(outgoing, more)
        else:  # fields are "c", RAW or not, our tag or none: a control packed before
            key = (coro.id, raw, own)
            body = self._packed_controls.get(key)
            if body is None:
                body = self._pack_control(key, fields or _send_fields(coro.id, raw, own))
            link.send_packed(body, payload, key[0])
        if link.over_high():
            sender = self.kernel.cur_coro()
            if sender is not None and link.charges.charge(sender, _size(payload, more)):
                self.kernel.hold_sender(sender, link.hold)
        return 0

    def post_plain(self, location: Location, coro_id: int, payload: bytes, raw: bool) -> bool:
        """(Loop thread.) Queue the "send" of a message of `payloads.PLAIN_TYPES` whose
        payload ``payload`` (`payloads.plain`; ``raw``: it was bytes) was made in another
        thread, to coroutine ``coro_id`` at ``location``: what `send` queues for it on the
        loop thread, packed control included; False as `post` when it cannot be queued."""
        own = self.fences.own
        link = self.open_link(location)
        if link is None:
            fields = _send_fields(coro_id, raw, own)
            return self.post(location, trusted_message("send", 0, fields, payload))
        key = (coro_id, raw, own)
        body = self._packed_controls.get(key)
        if body is None:
            body = self._pack_control(key, _send_fields(coro_id, raw, own))
        link.send_packed(body, payload, coro_id)
        return True

    def _pack_control(self, key: tuple[int, bool, int], fields: dict[str, object]) -> bytes:
        """The packed control map of a "send" with these fields, remembered under ``key``
        (at most `PACKED_CONTROLS` of them: when full, all are forgotten)."""
        body = pack(message_control(trusted_message("send", 0, fields)))
        if len(self._packed_controls) >= PACKED_CONTROLS:
            self._packed_controls.clear()
        self._packed_controls[key] = body
        return body

    def _post_hopped(
        self, location: Location, message: Message, size: int, more: tuple[Part, ...]
    ) -> None:
        with self._hop_lock:
            self._hopping -= size
        self.post(location, message, more)

    def _wait_for_room(self, location: Location) -> None:
        """(Not the loop thread.) Wait while the link to ``location``, with what threads
        sent that is still on its way to the loop, is over its high-water mark;
        TimeoutError if it stays there."""
        peer = self.peers.get(location)
        link = None if peer is None else peer.link
        if link is None or link.queued_bytes + self._hopping <= flow.SEND_HIGH:
            return
        try:
            self.kernel.run_sync(link.room(), flow.THREAD_SEND_TIMEOUT)
        except TimeoutError:
            raise TimeoutError(
                f"send to {location}: {link.queued_bytes} bytes still queued after "
                f"{flow.THREAD_SEND_TIMEOUT} s (the receiver does not keep up)"
            ) from None

    async def deliver(self, coro: Coro, message: object, timeout: float | None) -> int:
        await self.started()
        return await self.deliver_encoded(coro, encode_delivery(coro, message), timeout)

    async def deliver_encoded(self, coro: Coro, delivery: Delivery, timeout: float | None) -> int:
        """`deliver` of a message `encode_delivery` pickled (perhaps on another thread)."""
        await self.started()
        op, fields, payload = delivery
        if op == "deliver":  # else a pulse: it waits for nobody
            peer = self.peers.get(coro.home_location)
            if peer is not None and peer.link is not None and not peer.link.has_room:
                started = self.loop.time()
                try:  # room first (back-pressure), within the caller's timeout
                    await asyncio.wait_for(peer.link.drained(), timeout)
                except TimeoutError:
                    return 0
                if timeout is not None:
                    timeout = max(0.0, timeout - (self.loop.time() - started))
        reply = await self.request(coro.home_location, op, fields, payload, timeout)
        if reply is None:
            return 0 if timeout is not None and coro.home_location in self.peers else -1
        return int(reply.fields.get("r", -1))


#: What `encode_delivery` makes: (op, control fields, payload).
Delivery = tuple[str, dict[str, object], bytes]


def encode_delivery(coro: Coro, message: object) -> Delivery:
    """Pickle ``message`` for a ``deliver`` to the remote ``coro`` (in the caller's thread,
    so later changes to the object do not travel)."""
    fields: dict[str, object] = {"c": coro.id}
    payload, more = payloads.encode(message, fields)
    if more:  # a request is one message: the buffers joined behind the pickle stream
        payload = b"".join((payload, *more))
    op = "control_deliver" if type(message) in flow.CONTROL_TYPES else "deliver"
    return op, fields, bytes(payload)


def _size(payload: bytes | bytearray, more: tuple[payloads.Part, ...]) -> int:
    """Bytes of a message's payload and its out-of-band buffers."""
    return len(payload) + sum(memoryview(part).nbytes for part in more)


def _send_fields(coro_id: int, raw: bool, own: int) -> dict[str, object]:
    """The fields `payloads.encode` and the incarnation tag give a "send" of a message
    without buffers: the destination, RAW for bytes, our tag if we have one."""
    fields: dict[str, object] = {"c": coro_id}
    if raw:
        fields[RAW] = 1
    if own:
        fields[TAG] = own
    return fields
