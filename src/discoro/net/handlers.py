"""What this process does with each message an authenticated peer sends (one op each).

Handlers run synchronously on the loop thread in the order messages arrive, which is what
keeps per-peer FIFO order all the way into mailboxes. A payload is unpickled only here, only
from authenticated peers; one that fails to unpickle is refused with a log line (and a -1
reply when the sender waits) and never stops the link.

Invariant: every handler finds its target (coroutine, channel, RCI, file transfer) before it
unpickles anything, so a message for a target that does not exist is answered or dropped
without running a single unpickling step of its payload.
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from discoro.core.coro import Coro
from discoro.core.log import logger
from discoro.errors import MonitorException, RemoteError
from discoro.net import file_receiver, rci, remote_channels
from discoro.net.payloads import RAW
from discoro.net.payloads import decode as decode_payload
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
    """How a coroutine's end travels to a remote monitor: fields + pickled ``(kind, value)``
    (a normal end: the value alone, field ``sv``: half the pickling, once per job);
    anything that does not pickle is replaced (its type, or a RemoteError with its text)."""
    fields: dict[str, Any] = {"on": observed.name, "oi": observed.id}
    kind, value = info[0], info[1]
    if kind is StopIteration:
        try:
            payload = pickle.dumps(value, PROTOCOL)
        except Exception:
            fields["vt"] = type(value).__qualname__
            try:
                return fields, pickle.dumps((StopIteration, type(value)), PROTOCOL)
            except Exception:
                return fields, pickle.dumps((StopIteration, repr(value)), PROTOCOL)
        fields["sv"] = 1  # the payload is the value alone
        return fields, payload
    text = "".join(traceback.format_exception(kind, value, info[2] if len(info) > 2 else None))
    fields["tb"] = text
    fields["tn"] = getattr(kind, "__name__", str(kind))
    fields["tm"] = str(value)
    try:
        return fields, pickle.dumps((kind, value), PROTOCOL)
    except Exception:
        error = RemoteError(fields["tn"], fields["tm"], text)
        return fields, pickle.dumps((RemoteError, error), PROTOCOL)


def exit_notice(
    observed: object, fields: Mapping[str, object], payload: bytes | bytearray | None
) -> MonitorException:
    """The `MonitorException` a monitor gets for ``observed``, from what `encode_exit` made
    (a payload that does not unpickle here becomes a `RemoteError` with the sender's text)."""
    try:
        info = pickle.loads(payload or b"")
        if fields.get("sv"):
            info = (StopIteration, info)
    except Exception as exc:
        logger.debug("cannot unpickle the end of %s: %r", observed, exc)
        error = RemoteError(str(fields.get("tn")), str(fields.get("tm")), str(fields.get("tb")))
        info = (RemoteError, error)
    notice = MonitorException(observed, info)
    text = fields.get("tb")
    notice.remote_traceback = text if isinstance(text, str) else None
    return notice


class Handlers:
    """The ops about coroutines, names and the link itself; `table` adds those of files,
    channels and RCIs. One method per op, named ``on_<op>``."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.kernel = net.kernel  # its door (`discoro.core.door`): no private names

    def table(self) -> dict[str, Handler]:
        net = self.net
        return {
            **file_receiver.handlers(net),
            **remote_channels.handlers(net),
            **rci.handlers(net),
            "send": self.on_send,
            "deliver": self.on_deliver,
            "control_send": self.on_send,
            "control_deliver": self.on_deliver,
            "reply": self.on_reply,
            "monitor": self.on_monitor,
            "notify_exit": self.on_notify_exit,
            "terminate": self.on_terminate,
            "throw": self.on_throw,
            "locate": self.on_locate,
            "peer_closed": self.on_peer_closed,
        }

    # -- helpers ----------------------------------------------------------------------------

    def local_coro(self, message: Message, key: str = "c") -> Coro | None:
        """The local coroutine whose id is field ``key``, or None; a field that cannot be an
        id is a malformed message (ValueError: the dispatcher refuses it with a log line)."""
        ident = message.fields.get(key)
        if ident is None:
            return None
        if type(ident) is not int:
            raise ValueError(f"field {key!r} is not a coroutine id: {ident!r}")
        return self.kernel.local_coro(ident)

    @staticmethod
    def unpickle(peer: Peer, message: Message) -> tuple[bool, Any]:
        """``(True, value)`` of the payload, or ``(False, None)`` with a log line."""
        try:
            return True, pickle.loads(message.payload or b"")
        except Exception as exc:
            logger.warning("cannot unpickle %s from %s: %r", message.op, peer, exc)
            return False, None

    # -- one method per op --------------------------------------------------------------------

    def on_send(self, peer: Peer, message: Message) -> None:
        ident = message.fields.get("c")
        # `local_coro` inlined for a well-formed id (this is the hot path of every remote send)
        coro = self.kernel.local_coro(ident) if type(ident) is int else self.local_coro(message)
        if coro is None:
            logger.debug("message from %s for unknown coroutine %s", peer, message.fields)
            return
        try:  # unpickle() inlined: this is the hot path of every remote send
            value = decode_payload(message.fields, message.payload)
        except Exception as exc:
            logger.warning("cannot unpickle %s from %s: %r", message.op, peer, exc)
            return
        self.kernel.deliver_local(coro, value)

    def on_send_run(self, peer: Peer, message: Message, payloads: list[bytes]) -> None:
        """`on_send` for a run of sends to one coroutine that differ only in their payloads
        (`net.send_runs`): one look-up, one hand-over to the core for the whole run."""
        fields = message.fields
        ident = fields.get("c")
        coro = self.kernel.local_coro(ident) if type(ident) is int else self.local_coro(message)
        if coro is None:
            logger.debug(
                "%d messages from %s for unknown coroutine %s", len(payloads), peer, fields
            )
            return
        values: list[object]
        if fields.get(RAW):  # raw bytes, as `decode_payload` gives them (run payloads are bytes)
            values = payloads  # type: ignore[assignment]  # list is invariant; read-only here
        else:
            values = []
            for payload in payloads:
                try:
                    values.append(decode_payload(fields, payload))
                except Exception as exc:
                    logger.warning("cannot unpickle %s from %s: %r", message.op, peer, exc)
        if values:
            self.kernel.deliver_local_run(coro, values)

    def on_deliver(self, peer: Peer, message: Message) -> None:
        coro = self.local_coro(message)
        result = -1
        if coro is not None:
            try:
                value = decode_payload(message.fields, message.payload)
            except Exception as exc:
                logger.warning("cannot unpickle %s from %s: %r", message.op, peer, exc)
            else:
                self.kernel.deliver_local(coro, value)
                result = 1
        self.net.reply(peer, message.rid, {"r": result})

    def on_reply(self, peer: Peer, message: Message) -> None:
        self.net.take_reply(message)

    def on_monitor(self, peer: Peer, message: Message) -> None:
        observed = self.local_coro(message)
        if observed is None:  # ended: an upper layer may keep it findable (ended_coros)
            observed = self.net.ended_coros.get(message.fields.get("c"))  # type: ignore[arg-type]
        if observed is None:
            self.net.reply(peer, message.rid, {"r": -1})
            return
        ok, monitor = self.unpickle(peer, message)
        if not ok or not isinstance(monitor, Coro):
            self.net.reply(peer, message.rid, {"r": -1})
            return
        if self.kernel.has_ended(observed):  # the reply first: then the end, at once
            self.net.reply(peer, message.rid, {"r": 0, "ended": True})
            self.kernel.add_monitor_local(observed, monitor)
            return
        self.kernel.add_monitor_local(observed, monitor)
        self.net.reply(peer, message.rid, {"r": 0})

    def on_notify_exit(self, peer: Peer, message: Message) -> None:
        fields = message.fields
        monitor = self.local_coro(message, "m")
        observed = self.kernel.coro_handle(
            str(fields.get("on")), int(fields.get("oi", 0)), peer.location
        )
        peer.unwatch(observed.id, monitor)
        if monitor is None:
            return
        self.kernel.deliver_local(monitor, exit_notice(observed, fields, message.payload))
        for hook in self.net.exit_hooks:  # upper layers' state: on the core's loop, in order
            self.kernel.run_local(hook, peer.location, observed.id, monitor)

    def on_terminate(self, peer: Peer, message: Message) -> None:
        coro = self.local_coro(message)
        if coro is not None:
            self.kernel.run_local(coro.terminate)

    def on_throw(self, peer: Peer, message: Message) -> None:
        coro = self.local_coro(message)
        if coro is None:
            logger.debug("throw from %s for unknown coroutine %s", peer, message.fields)
            return
        ok, error = self.unpickle(peer, message)
        if ok and isinstance(error, BaseException):
            self.kernel.run_local(coro.throw, error)

    def on_locate(self, peer: Peer, message: Message) -> None:
        fields = message.fields
        found = self.net.lookups.find_local(str(fields.get("k")), str(fields.get("n")))
        if found is None:
            self.net.reply(peer, message.rid, {"r": -1})
        else:
            self.net.reply(peer, message.rid, {"r": 0}, pickle.dumps(found, PROTOCOL))

    def on_peer_closed(self, peer: Peer, message: Message) -> None:
        peer.said_goodbye = True
        if peer.link is not None:
            peer.link.close()


def table(net: Network) -> dict[str, Handler]:
    """The dispatch table of ``net``: op -> handler."""
    return Handlers(net).table()
