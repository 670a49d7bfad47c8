"""Runs of received sends: consecutive frames of one link whose control bytes repeat (a
stream of sends to one coroutine) come up from its connection as one run
(`Connection.process`'s ``handle_run``: a message without a payload and the run's payloads),
and are dispatched here in one call.

Invariant: a run is taken exactly as its messages one by one would be (`Network.dispatch`),
in its place in the link's order: the intake weighs every message of it, the fences and the
handler see the same fields. A send whose handler is the network's own (`Handlers.on_send`)
goes to `Handlers.on_send_run` in one call; any other op, a handler replaced in the dispatch
table, or a process with fences up goes message by message through `Network.dispatch`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discoro.core.log import logger
from discoro.net.handlers import Handlers
from discoro.wire.messages import trusted_message

if TYPE_CHECKING:
    from discoro.net.link import Link
    from discoro.net.network import Network
    from discoro.wire.messages import Message

_ON_SEND = Handlers.on_send


def dispatch_run(network: Network, link: Link, message: Message, payloads: list[bytes]) -> None:
    """Dispatch the run ``payloads`` of ``message``'s op and fields from ``link``."""
    handler = network.dispatch_table.get(message.op)
    owner = getattr(handler, "__self__", None)
    if (
        getattr(handler, "__func__", None) is not _ON_SEND
        or not isinstance(owner, Handlers)
        or network.fences.limits
    ):
        dispatch = network.dispatch
        op, fields = message.op, message.fields
        for payload in payloads:
            dispatch(link, trusted_message(op, 0, fields.copy(), payload))
        return
    intake = network.intake
    if intake is not None:  # on a transport thread: what waits for the core
        intake.took_run(link, message.op, payloads)
    try:
        owner.on_send_run(link.peer, message, payloads)
    except Exception as exc:  # a malformed field: the run's messages, as each would be
        logger.warning("cannot handle %r from %s: %r", message.op, link.peer, exc)
