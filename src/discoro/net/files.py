"""File transfer between peers: `send_file` / `del_file` (reference 2.10). Being built."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class FileTransfer:
    """Mixin of `Network`: the sending side of file transfer (`send_file`, `del_file`,
    `set_dest_path`)."""


def handlers(net: Any) -> dict[str, Callable[[Any, Any], None]]:
    """The ops of the receiving side."""
    return {}
