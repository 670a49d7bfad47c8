"""Channels across processes (reference 1.7, 2.7): what remote `Channel` handles need.

A channel lives in one process, its owner; other processes hold handles (its name and the
owner's location) whose methods end up here. The requesting side is the `RemoteChannels`
mixin of `Network`; the owner's side is the handlers returned by `handlers`.

Ops (fields are msgpack-native, the payload is pickled; ``n`` is the channel's name):

- ``channel_send``  {n} + message: fire and forget; the owner sends the message on.
- ``channel_deliver`` {n, t: timeout or None, k: minimum subscribers} + message, answered
  with ``{r: count}`` (0 on timeout, -1 if the channel is gone).
- ``subscribe`` / ``unsubscribe`` {n} + the subscriber (a `Coro` or `Channel` reference),
  answered with ``{r: 0 or -1}``.

Invariants:
- The owner handles ``channel_send`` synchronously as it arrives, so messages from one
  process to a channel reach the subscribers in the order they were sent (one FIFO link per
  process pair, then the channel's own in-order dispatch).
- The owner finds a channel by name with ``kernel.local_channel`` (every live channel, registered
  or not), exactly as a pickled channel reference resolves; registration only matters for
  `locate`.
- Remote subscribers (coroutines or channels) of a process that goes offline are dropped
  from every local channel; one whose ``send``/``deliver`` reports -1 is dropped by the
  channel itself. So a dead subscriber never keeps a channel busy.
- Every wait has an end: a request ends with its reply, its timeout, or its peer going
  offline.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from discoro.core.channel import Channel
from discoro.core.coro import Coro
from discoro.core.log import logger
from discoro.net.location import PeerStatus
from discoro.wire.messages import Message, trusted_message

if TYPE_CHECKING:
    import asyncio

    from discoro.core.kernel import AsynCoro
    from discoro.net.location import Location
    from discoro.net.network import Network
    from discoro.net.peers import Peer

PROTOCOL = pickle.HIGHEST_PROTOCOL
#: How much longer than the caller's timeout a remote ``deliver`` waits for the owner's
#: answer: the owner spends up to the timeout itself, the answer needs time to travel.
REPLY_MARGIN = 0.5

Handler = Callable[["Peer", Message], None]


class RemoteChannels:
    """Mixin of `Network`: the requesting side of remote channel handles."""

    if TYPE_CHECKING:  # provided by Network
        kernel: AsynCoro
        peers: dict[Location, Peer]

        def post_from_any_thread(self, location: Location, message: Message) -> int: ...

        async def started(self) -> None: ...

        async def request(
            self,
            location: Location,
            op: str,
            fields: dict[str, Any],
            payload: bytes | None = None,
            timeout: float | None = None,
        ) -> Message | None: ...

    # -- the requests -------------------------------------------------------------------

    def channel_send(self, channel: Channel, message: object) -> int:
        """Queue ``message`` for the remote ``channel`` (any thread): 0, or -1 if it cannot
        be queued. The message is pickled here, in the caller's thread."""
        payload = pickle.dumps(message, PROTOCOL)
        return self.post_from_any_thread(
            channel.home_location,
            trusted_message("channel_send", 0, {"n": channel.name}, payload),
        )

    async def channel_deliver(
        self, channel: Channel, message: object, timeout: float | None, n: int
    ) -> int:
        """Have the owner deliver ``message`` once ``channel`` has ``n`` subscribers: the
        number of end recipients, 0 on timeout, -1 if the channel or its peer is gone."""
        await self.started()
        payload = pickle.dumps(message, PROTOCOL)
        location = channel.home_location
        peer = self.peers.get(location)
        if peer is not None and peer.link is not None:
            await peer.link.drained()
        fields = {"n": channel.name, "t": timeout, "k": int(n)}
        wait = None if timeout is None else max(0.0, timeout) + REPLY_MARGIN
        reply = await self.request(location, "channel_deliver", fields, payload, wait)
        if reply is None:
            return 0 if timeout is not None and location in self.peers else -1
        return int(reply.fields.get("r", -1))

    async def channel_subscribe(
        self, channel: Channel, subscriber: Coro | Channel, timeout: float | None
    ) -> int:
        """Ask the owner of ``channel`` to add ``subscriber``: 0, or -1 (refused, timed out,
        peer gone)."""
        return await self._subscription("subscribe", channel, subscriber, timeout)

    async def channel_unsubscribe(
        self, channel: Channel, subscriber: Coro | Channel, timeout: float | None
    ) -> int:
        """Ask the owner of ``channel`` to remove ``subscriber``: 0, or -1."""
        return await self._subscription("unsubscribe", channel, subscriber, timeout)

    async def _subscription(
        self, op: str, channel: Channel, subscriber: Coro | Channel, timeout: float | None
    ) -> int:
        await self.started()  # a reference to a local subscriber must carry our location
        payload = pickle.dumps(subscriber, PROTOCOL)
        reply = await self.request(channel.home_location, op, {"n": channel.name}, payload, timeout)
        if reply is None:
            logger.warning("%s of %s to %s: no answer", op, subscriber, channel)
            return -1
        return int(reply.fields.get("r", -1))


class _OfflineSweeper:
    """A peer-status subscriber that is not a coroutine: when a peer goes offline, it drops
    that peer's coroutines and channels from the subscribers of every local channel."""

    def __init__(self, kernel: AsynCoro) -> None:
        self.kernel = kernel

    def send(self, status: Any) -> int:
        if isinstance(status, PeerStatus) and status.status == PeerStatus.Offline:
            self.kernel.drop_subscribers_at(status.location)
        return 0

    def __repr__(self) -> str:
        return "<channel subscriber sweeper>"


def handlers(net: Network) -> dict[str, Handler]:
    """The owner's side: one handler per op (loop thread, in arrival order)."""
    kernel = net.kernel
    loop: asyncio.AbstractEventLoop = net.loop
    tasks: set[asyncio.Task[Any]] = set()  # strong references until each is done
    net.status_subscribers.append(_OfflineSweeper(kernel))

    def channel_of(message: Message) -> Channel | None:
        name = message.fields.get("n")
        return kernel.local_channel(name) if isinstance(name, str) else None

    def unpickle(peer: Peer, message: Message) -> tuple[bool, Any]:
        try:
            return True, pickle.loads(message.payload or b"")
        except Exception as exc:
            logger.warning("cannot unpickle %s from %s: %r", message.op, peer, exc)
            return False, None

    def in_background(peer: Peer, rid: int, work: Any, what: str) -> None:
        """Run ``work`` (a coroutine giving an int) and reply its result (-1 if it fails)."""

        async def run() -> None:
            try:
                result = int(await net.on_core(work))
            except Exception:
                logger.exception("%s for %s failed", what, peer)
                result = -1
            net.reply(peer, rid, {"r": result})

        task = loop.create_task(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_channel_send(peer: Peer, message: Message) -> None:
        channel = channel_of(message)
        if channel is None:
            logger.debug("message from %s for unknown channel %r", peer, message.fields.get("n"))
            return
        ok, value = unpickle(peer, message)
        if ok:
            kernel.run_local(send_logged, channel, value, peer)

    def send_logged(channel: Channel, value: object, peer: Peer) -> None:
        try:
            channel.send(value)
        except Exception:
            logger.exception("channel %s could not send a message from %s", channel, peer)

    def on_channel_deliver(peer: Peer, message: Message) -> None:
        fields = message.fields
        channel = channel_of(message)
        timeout, count = fields.get("t"), fields.get("k", 0)
        valid = (timeout is None or isinstance(timeout, int | float)) and isinstance(count, int)
        ok, value = (False, None) if channel is None or not valid else unpickle(peer, message)
        if channel is None or not ok:
            net.reply(peer, message.rid, {"r": -1})
            return
        work = channel.deliver(value, timeout, count)
        in_background(peer, message.rid, work, f"deliver to {channel}")

    def subscription(op: str) -> Handler:
        def on_subscription(peer: Peer, message: Message) -> None:
            channel = channel_of(message)
            ok, subscriber = (False, None) if channel is None else unpickle(peer, message)
            if channel is None or not ok or not isinstance(subscriber, Coro | Channel):
                net.reply(peer, message.rid, {"r": -1})
                return
            if op == "subscribe":
                work = channel.subscribe(subscriber)
            else:
                work = channel.unsubscribe(subscriber)
            in_background(peer, message.rid, work, f"{op} {subscriber} to {channel}")

        return on_subscription

    return {
        "channel_send": on_channel_send,
        "channel_deliver": on_channel_deliver,
        "subscribe": subscription("subscribe"),
        "unsubscribe": subscription("unsubscribe"),
    }
