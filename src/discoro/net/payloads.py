"""Payloads: how a user's message becomes a frame payload, and back (issue 9).

- ``bytes``, ``bytearray`` and ``memoryview`` travel raw, without pickle (field `RAW`), and
  arrive as ``bytes``. A ``bytes`` message is queued as it is (no copy); the mutable kinds
  are copied once at `send`, so a change made after it never reaches the receiver.
- Anything else is pickled with protocol 5. Contiguous buffers of at least `OUT_OF_BAND_MIN`
  bytes (numpy arrays, `pickle.PickleBuffer`) go out of band: field `OUT_OF_BAND` lists
  their sizes and they follow the pickle stream in the payload as their own parts (a
  read-only buffer is not copied at all; a writable one once, as a snapshot), never joined
  with it. On arrival they are views of the received payload (no copy).

Invariants:
- The payload's layout is the pickle stream followed by the out-of-band buffers, in order; a
  receiver that gets it joined (a message queued while its link was being dialled) reads it
  the same way.
- A malformed description (sizes that are not non-negative ints, or more bytes than the
  payload holds) raises ValueError: the dispatcher drops that message with a log line.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

from discoro.wire.connection import RAW_KEY

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "OUT_OF_BAND",
    "OUT_OF_BAND_MIN",
    "PLAIN_TYPES",
    "RAW",
    "Part",
    "decode",
    "encode",
    "plain",
]

#: Field: the payload is the message itself (bytes-like, no pickle); a large one arrives
#: collected into a bytes object already (`wire.connection.RAW_KEY`), so not copied here.
RAW = RAW_KEY
#: Field: sizes of the out-of-band buffers that follow the pickle stream.
OUT_OF_BAND = "ob"
#: Buffers smaller than this are pickled in band (a part of their own costs more).
OUT_OF_BAND_MIN = 64 * 1024
PROTOCOL = 5

Part = bytes | memoryview
#: Types that never hold a buffer to send out of band.
_NO_BUFFERS = frozenset({int, float, str, bool, type(None), complex})
_dumps = pickle.dumps
_loads = pickle.loads
#: Types whose payload `encode` makes without looking for out-of-band buffers (``bytes`` raw,
#: the others a plain pickle): a sender may make it itself (`plain`).
PLAIN_TYPES = frozenset({bytes, *_NO_BUFFERS})


class _OutOfBand:
    """The ``buffer_callback`` of one pickling: collects large contiguous buffers."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[Part] = []

    def __call__(self, buffer: pickle.PickleBuffer) -> bool:
        try:
            view = buffer.raw()
        except BufferError:  # not contiguous: pickle copies it in band
            return True
        if view.nbytes < OUT_OF_BAND_MIN:
            return True
        self.parts.append(view if view.readonly else bytes(view))
        return False  # out of band


def encode(message: object, fields: dict[str, object]) -> tuple[bytes, tuple[Part, ...]]:
    """``(payload, more)`` for ``message``: the payload, and the buffers that follow it in the
    frame; ``fields`` gets the keys that say how to read them."""
    kind = type(message)
    if kind is bytes:
        fields[RAW] = 1
        return message, ()  # type: ignore[return-value]  # checked: it is bytes
    if kind is bytearray or kind is memoryview:
        fields[RAW] = 1
        return bytes(message), ()  # type: ignore[call-overload]  # checked: bytes-like
    if kind in _NO_BUFFERS:  # nothing to put out of band: the plain (faster) pickling
        return _dumps(message, PROTOCOL), ()
    collect = _OutOfBand()
    payload = _dumps(message, PROTOCOL, buffer_callback=collect)
    parts = collect.parts
    if not parts:
        return payload, ()
    fields[OUT_OF_BAND] = [len(part) for part in parts]
    return payload, tuple(parts)


def plain(message: object) -> bytes:
    """`encode`'s payload for a message of one of `PLAIN_TYPES` (``bytes`` itself: field
    `RAW`; else a pickle, no fields), which has no buffers to send out of band."""
    if type(message) is bytes:
        return message
    return _dumps(message, PROTOCOL)


def decode(fields: Mapping[str, object], payload: bytes | bytearray | None) -> object:
    """The message a payload carries (see `encode`); raises what unpickling raises, or
    ValueError for a malformed description."""
    if fields.get(RAW):
        if payload is None:
            return b""
        return payload if type(payload) is bytes else bytes(payload)
    sizes = fields.get(OUT_OF_BAND)
    if sizes is None:
        return _loads(payload or b"")
    if type(sizes) is not list or not all(type(s) is int and s >= 0 for s in sizes):
        raise ValueError(f"bad out-of-band sizes {sizes!r}")
    data = payload or b""
    start = len(data) - sum(sizes)
    if start < 0:
        raise ValueError(f"out-of-band sizes {sizes!r} exceed the payload")
    view = memoryview(data)
    buffers = []
    position = start
    for size in sizes:
        buffers.append(view[position : position + size])
        position += size
    return _loads(view[:start], buffers=buffers)
