"""Channels across processes: subscribe, unsubscribe, send and deliver on remote channels.
Being built."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class RemoteChannels:
    """Mixin of `Network`: what remote channel handles need."""


def handlers(net: Any) -> dict[str, Callable[[Any, Any], None]]:
    return {}
