"""Receive buffer: bytes arriving from a stream, consumed front to back by the frame decoder.

Bytes get in two ways: `feed` copies them in (the h11-style API), or the I/O shell asks
`get_buffer` for room, has the socket write straight into it (``recv_into``, as an
``asyncio.BufferedProtocol`` does) and reports the count with `buffer_updated`: no bytes
object per read, and no copy at all for large blocks (below).

Theory of operation:
- Unconsumed bytes live in ``_data[_pos:_end]`` of a private bytearray; ``_data[_end:]`` is
  free room. When everything was consumed the same bytearray is reused from the start, so a
  steady stream of small frames allocates nothing here. When the room runs short the pending
  bytes move to the front (or into a fresh, bigger bytearray); the bytearray is never resized
  in place, so a memoryview handed out by `get_buffer` can never make that fail.
- A large block (`take` of at least ``COLLECT_THRESHOLD`` bytes, i.e. a payload) that has not
  fully arrived gets its own bytearray of exactly its size: what is already buffered is copied
  in once, and from then on `get_buffer` hands out the block's missing part, so the socket
  writes the rest straight into place. The finished block is returned as that bytearray: a
  large payload is copied exactly once on receive (by the kernel), not joined from pieces.
- A block is handed up and forgotten, except that the buffer remembers the last one: if
  nothing else refers to it any more when the next block of the same size starts (its
  consumer copied it and dropped it: a raw ``bytes`` message), it is collected into again
  instead of a fresh bytearray, which would be zero-filled and, being large, usually fresh
  pages from the kernel (a page fault each 4 KiB). Whether anything refers to it is its
  reference count (CPython only: elsewhere a block is never reused); a memoryview of it,
  a numpy array over it or any other holder keeps it from being reused.
- A block asked for as bytes (``take(size, as_bytes=True)``: the payload of a raw ``bytes``
  message) is collected into a fresh bytes object through a writable view of it
  (`wire.fresh_bytes`, CPython), handed up as that bytes object: no zero fill, and no copy
  into a bytes object at the end. It is never reused. Elsewhere it is a bytearray as above.
- `get_buffer` never offers more room than the block being collected still misses, so the
  bytes that follow a block never land inside it; once the block is complete (even before
  it is taken), the room is in ``_data`` again, behind which nothing of the block is left.
- ``chunk`` bounds the room a read is offered and is the least a fresh bytearray gets
  (`CHUNK` by default). A decoder of small frames (the handshake's) sets it to about one
  frame, so a connection that has not authenticated holds a few KiB here, not 256 KiB.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from discoro.wire.fresh_bytes import fresh_bytes

if TYPE_CHECKING:
    from struct import Struct

__all__ = ["CHUNK", "COLLECT_THRESHOLD", "ReceiveBuffer"]

#: Blocks at least this big that are not yet complete are collected in place, not buffered.
COLLECT_THRESHOLD = 64 * 1024
#: Room offered to the socket for one read (asyncio reads up to 256 KiB at a time too).
CHUNK = 256 * 1024
_MIN_ROOM = 16 * 1024  # make more room when less than this is free
_SMALL = 4096  # below this, copying a bytearray slice twice beats making a memoryview
# A bytearray only the buffer refers to has this reference count (its attribute and the
# argument of getrefcount); -1 where reference counts do not tell (no reuse there).
_UNSHARED = 2 if sys.implementation.name == "cpython" else -1
_getrefcount = getattr(sys, "getrefcount", lambda _: 0)

_Chunk = bytes | bytearray | memoryview


class ReceiveBuffer:
    """Bytes received but not yet consumed; see the module docstring."""

    __slots__ = ("_block", "_data", "_end", "_filled", "_last_block", "_pos", "_room", "chunk")

    def __init__(self, chunk: int = CHUNK) -> None:
        self.chunk = chunk  # room offered per read, and the least a fresh bytearray gets
        self._data = bytearray()
        self._pos = 0
        self._end = 0
        self._block: bytearray | bytes | None = None  # a large block being collected
        self._room: memoryview | None = None  # ... a writable view of it, while it is
        self._filled = 0  # bytes of _block that have arrived
        self._last_block: bytearray | None = None  # the last block handed up (for reuse)

    def __len__(self) -> int:
        """Bytes available to read (not counting a block being collected)."""
        return self._end - self._pos

    @property
    def empty(self) -> bool:
        """True when nothing at all is buffered, not even part of a collected block."""
        return self._pos >= self._end and self._block is None

    # -- bytes in ---------------------------------------------------------------------------

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Writable room for the next received bytes (report them with `buffer_updated`)."""
        room = self._room
        if room is not None:
            return room[self._filled :]
        self._make_room(min(max(sizehint, _MIN_ROOM), self.chunk))
        return memoryview(self._data)[self._end :]

    def room_for(self, size: int) -> memoryview:
        """Writable room for exactly ``size`` more bytes behind those buffered (not for a
        block being collected); then `buffer_updated`."""
        self._make_room(size)
        end = self._end
        return memoryview(self._data)[end : end + size]

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` bytes were written at the start of the last `get_buffer` view."""
        room = self._room
        if room is not None:
            self._filled += nbytes
            if self._filled >= len(room):  # whole: never written through again
                self._room = None
        else:
            self._end += nbytes

    def feed(self, data: _Chunk) -> None:
        """Append a copy of ``data``."""
        size = len(data)
        if not size:
            return
        room = self._room
        if room is not None:
            filled = self._filled
            used = min(len(room) - filled, size)
            room[filled : filled + used] = data[:used]
            self.buffer_updated(used)
            if used == size:
                return
            data, size = data[used:], size - used
        self._make_room(size)
        self._data[self._end : self._end + size] = data
        self._end += size

    def _make_room(self, size: int) -> None:
        """Ensure ``size`` free bytes after ``_end`` (never resizing ``_data`` in place)."""
        data, pos, end = self._data, self._pos, self._end
        if pos == end:  # all consumed: start over
            pos = end = self._pos = self._end = 0
        if len(data) - end >= size:
            return
        pending = end - pos
        if pos and len(data) - pending >= max(size, len(data) >> 1):
            data[:pending] = data[pos:end]  # same length: a move, not a resize
        else:
            fresh = bytearray(max(pending + size, self.chunk, 2 * pending))
            fresh[:pending] = data[pos:end]
            self._data = fresh
        self._pos, self._end = 0, pending

    # -- bytes out --------------------------------------------------------------------------

    def prefix(self, size: int) -> bytes:
        """Up to ``size`` available bytes, without consuming them."""
        return bytes(self._data[self._pos : min(self._pos + size, self._end)])

    def unpack(self, layout: Struct) -> tuple[Any, ...] | None:
        """Consume and decode ``layout.size`` bytes, or None (consuming nothing) if fewer."""
        pos = self._pos
        if self._end - pos < layout.size:
            return None
        self._pos = pos + layout.size
        return layout.unpack_from(self._data, pos)

    def read(self, size: int) -> bytes:
        """Consume and return ``size`` bytes; the caller checked they are available."""
        start = self._pos
        end = self._pos = start + size
        if size <= _SMALL:
            return bytes(self._data[start:end])
        with memoryview(self._data) as view:
            return bytes(view[start:end])

    def take(self, size: int, as_bytes: bool = False) -> bytes | bytearray | None:
        """Consume and return the next ``size`` bytes, or None until they have all arrived
        (a large block comes back as the bytearray it was collected in, or, ``as_bytes``,
        as the bytes object it was collected in where `fresh_bytes` is supported).

        After a None, call again (with the same size and ``as_bytes``) once more data came.
        """
        block = self._block
        if block is not None:
            if self._room is not None:
                return None
            self._block = None
            if type(block) is bytearray:
                self._last_block = block
            return block
        available = self._end - self._pos
        if available >= size:
            return self.read(size)
        if size < COLLECT_THRESHOLD:
            return None
        # Start collecting: what is here goes in now, the rest straight from the socket.
        if as_bytes and fresh_bytes is not None:
            block, room = fresh_bytes(size)
        else:
            block = self._last_block
            self._last_block = None
            if block is None or len(block) != size or _getrefcount(block) != _UNSHARED:
                block = bytearray(size)
            room = memoryview(block)
        self._block, self._room = block, room
        room[:available] = self._data[self._pos : self._end]
        self._filled = available
        self._pos = self._end = 0
        return None
