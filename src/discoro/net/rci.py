"""RCI: remote coroutine invocation (reference 2.9). Being built."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def handlers(net: Any) -> dict[str, Callable[[Any, Any], None]]:
    return {}
