"""What this process does with each message an authenticated peer sends (one op each).

Handlers run synchronously on the loop thread in the order messages arrive, which is what
keeps per-peer FIFO order all the way into mailboxes. A payload is unpickled only here, only
from authenticated peers; one that fails to unpickle is refused with a log line (and a -1
reply when the sender waits) and never stops the link.
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from discoro.core.coro import Coro
from discoro.core.log import logger
from discoro.errors import MonitorException, RemoteError
from discoro.wire.messages import Message

if TYPE_CHECKING:
    from discoro.net.network import Network
    from discoro.net.peers import Peer

Handler = Callable[["Peer", Message], None]
PROTOCOL = pickle.HIGHEST_PROTOCOL


def dumps_exception(error: BaseException) -> bytes:
    try:
        return pickle.dumps(error, PROTOCOL)
    except Exception:
        text = "".join(traceback.format_exception(error))
        return pickle.dumps(RemoteError(type(error).__name__, str(error), text), PROTOCOL)


def encode_exit(observed: Coro, info: tuple[Any, ...]) -> tuple[dict[str, Any], bytes]:
    """How a coroutine's end travels to a remote monitor: fields + pickled ``(kind, value)``;
    anything that does not pickle is replaced (its type, or a RemoteError with its text)."""
    fields: dict[str, Any] = {"on": observed._name, "oi": observed._id}
    kind, value = info[0], info[1]
    if kind is StopIteration:
        try:
            return fields, pickle.dumps((StopIteration, value), PROTOCOL)
        except Exception:
            fields["vt"] = type(value).__qualname__
            try:
                return fields, pickle.dumps((StopIteration, type(value)), PROTOCOL)
            except Exception:
                return fields, pickle.dumps((StopIteration, repr(value)), PROTOCOL)
    text = "".join(traceback.format_exception(kind, value, info[2] if len(info) > 2 else None))
    fields["tb"] = text
    fields["tn"] = getattr(kind, "__name__", str(kind))
    fields["tm"] = str(value)
    try:
        return fields, pickle.dumps((kind, value), PROTOCOL)
    except Exception:
        error = RemoteError(fields["tn"], fields["tm"], text)
        return fields, pickle.dumps((RemoteError, error), PROTOCOL)


def table(net: Network) -> dict[str, Handler]:
    kernel = net.kernel
    coros = kernel._coros
    loads = pickle.loads

    def unpickle(peer: Peer, message: Message) -> tuple[bool, Any]:
        try:
            return True, loads(message.payload or b"")
        except Exception as exc:
            logger.warning("cannot unpickle %s from %s: %r", message.op, peer, exc)
            return False, None

    def on_send(peer: Peer, message: Message) -> None:
        coro = coros.get(message.fields.get("c"))  # type: ignore[arg-type]
        if coro is None:
            logger.debug("message from %s for unknown coroutine %s", peer, message.fields)
            return
        try:  # unpickle() inlined: this is the hot path of every remote send
            value = loads(message.payload or b"")
        except Exception as exc:
            logger.warning("cannot unpickle %s from %s: %r", message.op, peer, exc)
            return
        coro._put(value)

    def on_deliver(peer: Peer, message: Message) -> None:
        coro = coros.get(message.fields.get("c"))  # type: ignore[arg-type]
        result = -1
        if coro is not None:
            ok, value = unpickle(peer, message)
            if ok:
                coro._put(value)
                result = 1
        net.reply(peer, message.rid, {"r": result})

    def on_reply(peer: Peer, message: Message) -> None:
        net.take_reply(message)

    def on_monitor(peer: Peer, message: Message) -> None:
        cid = message.fields.get("c")
        observed = coros.get(cid) or net.ended_coros.get(cid)  # type: ignore[arg-type]
        ok, monitor = unpickle(peer, message)
        if observed is None or not ok or not isinstance(monitor, Coro):
            net.reply(peer, message.rid, {"r": -1})
            return
        if observed._done:  # the reply first: the monitor then hears of the end at once
            net.reply(peer, message.rid, {"r": 0, "ended": True})
            observed._add_monitor(monitor)
            return
        observed._add_monitor(monitor)
        net.reply(peer, message.rid, {"r": 0})

    def on_notify_exit(peer: Peer, message: Message) -> None:
        fields = message.fields
        monitor = coros.get(fields.get("m"))  # type: ignore[arg-type]
        observed = Coro._handle(str(fields.get("on")), int(fields.get("oi", 0)), peer.location)
        peer.unwatch(observed._id, monitor)
        if monitor is None:
            return
        try:
            info = loads(message.payload or b"")
        except Exception as exc:
            logger.debug("cannot unpickle the end of %s: %r", observed, exc)
            error = RemoteError(str(fields.get("tn")), str(fields.get("tm")), str(fields.get("tb")))
            info = (RemoteError, error)
        notice = MonitorException(observed, info)
        notice.remote_traceback = fields.get("tb")
        monitor._put(notice)

    def on_terminate(peer: Peer, message: Message) -> None:
        coro = coros.get(message.fields.get("c"))  # type: ignore[arg-type]
        if coro is not None:
            coro.terminate()

    def on_throw(peer: Peer, message: Message) -> None:
        coro = coros.get(message.fields.get("c"))  # type: ignore[arg-type]
        ok, error = unpickle(peer, message)
        if coro is not None and ok and isinstance(error, BaseException):
            coro.throw(error)

    def on_locate(peer: Peer, message: Message) -> None:
        found = net.lookups.find_local(str(message.fields.get("k")), str(message.fields.get("n")))
        if found is None:
            net.reply(peer, message.rid, {"r": -1})
        else:
            net.reply(peer, message.rid, {"r": 0}, pickle.dumps(found, PROTOCOL))

    def on_ping(peer: Peer, message: Message) -> None:
        # any bytes received already count as a sign of life; a ping is answered, because
        # the pinged side only pings when it has heard nothing, which the pings prevent
        if message.op == "ping" and peer.link is not None:
            peer.link.send(Message("pong"))

    def on_peer_closed(peer: Peer, message: Message) -> None:
        peer.said_goodbye = True
        if peer.link is not None:
            peer.link.close()

    from discoro.net import file_receiver, rci, remote_channels

    return {
        **file_receiver.handlers(net),
        **remote_channels.handlers(net),
        **rci.handlers(net),
        "send": on_send,
        "deliver": on_deliver,
        "reply": on_reply,
        "monitor": on_monitor,
        "notify_exit": on_notify_exit,
        "terminate": on_terminate,
        "throw": on_throw,
        "locate": on_locate,
        "ping": on_ping,
        "pong": on_ping,
        "peer_closed": on_peer_closed,
    }
