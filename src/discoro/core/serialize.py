"""`serialize` / `unserialize`: pickle with the highest protocol (seed API).

Coroutines, channels and RCIs pickle to references (see their ``__reduce__``), so a message
that carries a coroutine handle can cross a process boundary.
"""

from __future__ import annotations

import pickle
from typing import Any


def serialize(obj: Any) -> bytes:
    """``obj`` pickled with the highest protocol (coroutines become references)."""
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def unserialize(data: bytes) -> Any:
    """The object `serialize` made ``data`` from. Never call it on untrusted bytes."""
    return pickle.loads(data)


deserialize = unserialize  # the later versions' name
