"""Messages about a link itself (``ping``, ``pong``, ``link_retired``), answered on the link
they came on, and how a duplicate link retires.

Liveness is per link (`Link._check_alive`): a ping is answered on the link that carried it,
not on the peer's current link, or a link that is not current would hear nothing back and
be judged silent.

Duplicate links: when both sides dial at once (or one side twice), both keep the link with the
smaller ``link_id`` (`Handshake.link_id`: a hash of the handshake, the same at both ends, so
both agree whatever order the two links authenticated in at either end;
`Network.link_authenticated`); the other one retires.

Invariants:
- A retiring link carries nothing new but pings and these notes: sends go to the peer's
  current link.
- Each side says ``link_retired`` on the retiring link once its own lanes there are empty, so
  the note follows, in the byte stream, every message that side ever queued on it.
- A side closes the retiring link once it has retired it itself and read the peer's note: by
  then it has read everything the peer sent on it, and `Link.close` writes whatever it still
  queued there before the stream closes. So a duplicate closes within about a round trip of
  the later side's decision and loses nothing; until both sides retired it, it stays open.
- A link that takes over from one the peer may still be sending on reads nothing until the
  old one has read the peer's note (or is gone): the peer sent everything on the old link
  before its note and everything on the new one after it decided, so this side hands the
  peer's messages up in the order they were sent (`follow`). Each side only waits for the
  other to empty its own lanes, which the waiting side keeps reading, so no wait is circular;
  a peer that never says the note is given up on after `RETIRED_WAIT` seconds, with a
  warning, and the new link reads on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discoro.core.log import logger
from discoro.wire.messages import trusted_message

if TYPE_CHECKING:
    from discoro.net.link import Link
    from discoro.wire.messages import Message

__all__ = ["LINK_OPS", "follow", "old_link_done", "on_link_message", "retire"]

#: The ops `on_link_message` handles (no incarnation fence holds them back: `fencing`).
LINK_OPS = frozenset({"ping", "pong", "link_retired"})
PONG = trusted_message("pong")
RETIRED = trusted_message("link_retired")
#: Seconds a link that took over waits for the old one's note before it reads anyway (a
#: module knob, read per take-over). Only a peer that breaks the protocol makes it wait that
#: long: a peer that is gone closes the old link within the dead time (`Link._check_alive`).
RETIRED_WAIT = 60.0


def on_link_message(link: Link, message: Message) -> bool:
    """Handle ``message`` if it is about ``link`` itself; whether it was."""
    op = message.op
    if op == "ping":
        link.send(PONG)
    elif op == "link_retired":
        link.peer_retired = True
        old_link_done(link)  # everything the peer sent on it came before this
        if link.retiring:
            link.close()
    elif op != "pong":  # (any bytes received already count as a sign of life)
        return False
    return True


def retire(link: Link) -> None:
    """``link`` is a duplicate: say so on it once its lanes are empty; close it once the peer
    said so too."""
    if link.retiring:
        return
    link.retiring = True
    if link.peer_retired:
        link.close()
        return
    link.retirement = link.network.loop.create_task(_say_retired(link))


async def _say_retired(link: Link) -> None:
    await link.drained()
    transport = link.transport
    if transport is not None and not transport.is_closing():
        link.send(RETIRED)


def follow(link: Link, old: Link) -> None:
    """``link`` takes over from ``old`` as the peer's link: it reads nothing until ``old``
    has read the peer's ``link_retired`` (or is gone), so the peer's messages on ``old``
    are all handed up before any it sent on ``link``."""
    if old.peer_retired or old.lost.done():
        return  # all read already
    logger.debug("new connection with %s waits for the old one to deliver its rest", old.peer)
    link.hold_reading()
    old.successor = link
    loop = link.network.loop
    link.follow_timer = loop.call_later(RETIRED_WAIT, _overdue, link, old)


def old_link_done(old: Link) -> None:
    """``old`` read the peer's last message on it (or was lost): its successor reads on
    (in a later callback: ``old`` may be in the middle of a batch)."""
    link = old.successor
    if link is None:
        return
    old.successor = None
    if link.follow_timer is not None:
        link.follow_timer.cancel()
        link.follow_timer = None
    link.network.loop.call_soon(link.read_again)


def _overdue(link: Link, old: Link) -> None:
    link.follow_timer = None
    if old.successor is not link:
        return
    logger.warning(
        "peer %s did not say it retired its old connection within %s s; reading the new one "
        "anyway (its messages may be handed up out of order)",
        link.peer,
        RETIRED_WAIT,
    )
    old_link_done(old)
