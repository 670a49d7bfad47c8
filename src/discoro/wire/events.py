"""Events a `Connection` hands up from `next_event`.

Exactly one of: `NEED_DATA` (feed more bytes, then ask again), `HandshakeComplete` (once,
first), `MessageReceived` (zero or more, only after `HandshakeComplete`), `ConnectionClosed`
(the peer ended the stream at a frame boundary; repeated on later calls). Errors are raised,
never returned.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

if TYPE_CHECKING:
    from discoro.wire.identity import Identity
    from discoro.wire.messages import Message

__all__ = [
    "NEED_DATA",
    "ConnectionClosed",
    "Event",
    "HandshakeComplete",
    "MessageReceived",
    "Sentinel",
]


class Sentinel(enum.Enum):
    """Marker values (an Enum so type checkers can narrow on identity)."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.value


NEED_DATA: Literal[Sentinel.NEED_DATA] = Sentinel.NEED_DATA


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """The peer proved it holds the secret; ``peer`` is its authenticated identity."""

    peer: Identity


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message from the authenticated peer."""

    message: Message


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the stream at a frame boundary.

    ``clean`` is False when it did so before the handshake completed.
    """

    clean: bool


Event: TypeAlias = (
    HandshakeComplete | MessageReceived | ConnectionClosed | Literal[Sentinel.NEED_DATA]
)
