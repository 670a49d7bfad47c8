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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discoro.wire.messages import trusted_message

if TYPE_CHECKING:
    from discoro.net.link import Link
    from discoro.wire.messages import Message

__all__ = ["LINK_OPS", "on_link_message", "retire"]

#: The ops `on_link_message` handles (no incarnation fence holds them back: `fencing`).
LINK_OPS = frozenset({"ping", "pong", "link_retired"})
PONG = trusted_message("pong")
RETIRED = trusted_message("link_retired")


def on_link_message(link: Link, message: Message) -> bool:
    """Handle ``message`` if it is about ``link`` itself; whether it was."""
    op = message.op
    if op == "ping":
        link.send(PONG)
    elif op == "link_retired":
        link.peer_retired = True
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
