"""Incarnation tags on outgoing frames, and fences on incoming ones (issue 10).

A process that works for a computation does so under an *incarnation* number (the cluster
layer's scheduler assigns it; 0 means none). Every frame this process posts carries its
incarnation at the moment it was posted, in the control map (`TAG`), so a frame that waited
in a queue while the incarnation changed still says which incarnation sent it.

A receiver that has been told an incarnation of a peer was written off *fences* that peer:
from then on, every frame from that location whose tag is at or below the fenced number is
dropped (and logged: a warning for the first of each fence, a debug line for the rest). A
frame with a higher tag comes from a later incarnation and passes, so a process that rejoins
is heard again at once, whatever order the scheduler's news and its frames arrive in.

Rules:
- Tagging is done where frames are posted (`Network.post`), and by the file sender for the
  chunks it writes to a link directly; untagged frames (pings, replies) count as tag 0.
- Fences only grow (a lower number never lifts a higher one) and are never mutated frames:
  a tagged frame is a new `Message`.
- Replies and the link's own keep-alive ops are never dropped: a fenced process can not
  reach a coroutine through them, and dropping them would only make requests wait out their
  timeouts.
- Frames for an *exempt* local coroutine (``exempt``: the scheduler's request coroutine,
  which checks the incarnation in every report itself and must hear a fenced process say
  it has closed) are never dropped here.
- A process keeps tagging with its last incarnation after that one closed, until it is
  given the next: frames of its old jobs can never pass as a newer incarnation's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discoro.core.log import logger
from discoro.net.link_ops import LINK_OPS
from discoro.wire.messages import Message, trusted_message

if TYPE_CHECKING:
    from discoro.net.location import Location

TAG = "ic"  # the control-map field with the sender's incarnation
UNFENCED_OPS = LINK_OPS | {"reply", "peer_closed"}  # a link's own ops pass, whoever sends


class Fences:
    """This process's own incarnation (``own``) and the fences it keeps on its peers."""

    def __init__(self) -> None:
        self.own = 0
        self.limits: dict[Location, int] = {}  # peer -> highest incarnation written off
        self.dropped: dict[Location, int] = {}  # frames dropped since that peer's fence
        self.exempt: set[int] = set()  # ids of local coroutines that fence for themselves

    def tagged(self, message: Message) -> Message:
        """``message`` with this process's incarnation (itself when there is none, or it is
        tagged already)."""
        if not self.own or TAG in message.fields:
            return message
        fields = dict(message.fields)
        fields[TAG] = self.own
        return trusted_message(message.op, message.rid, fields, message.payload)

    def fence(self, location: Location, incarnation: int) -> None:
        """Drop, from now on, every frame from ``location`` tagged ``incarnation`` or lower."""
        if incarnation > self.limits.get(location, 0):
            self.limits[location] = incarnation
            self.dropped[location] = 0
            logger.info("frames from %s of incarnation <= %d are dropped", location, incarnation)

    def admits(self, location: Location, message: Message) -> bool:
        """Whether a frame from ``location`` may be handled (False: it was dropped, logged)."""
        limit = self.limits.get(location)
        if limit is None or message.op in UNFENCED_OPS:
            return True
        fields = message.fields
        tag = fields.get(TAG, 0)
        if type(tag) is int and tag > limit:
            return True
        if self.exempt and fields.get("c") in self.exempt:
            return True
        count = self.dropped.get(location, 0) + 1
        self.dropped[location] = count
        log = logger.warning if count == 1 else logger.debug
        log(
            "dropped %r from %s: incarnation %s was written off (fenced up to %d; %d dropped)",
            message.op,
            location,
            tag,
            limit,
            count,
        )
        return False
