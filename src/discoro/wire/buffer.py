"""Receive buffer: bytes arriving from a stream, consumed front to back by the frame decoder.

Theory of operation:
- Unconsumed bytes live in ``_data[_pos:]``. When nothing is pending, a fed ``bytes`` object
  is adopted as is (no copy); leftovers are copied into a private bytearray only when more
  data must be appended behind them. The consumed prefix of that bytearray is dropped lazily,
  once it is more than half of it, so feeding one byte at a time stays linear.
- Large blocks (`take` of at least ``COLLECT_THRESHOLD`` bytes, i.e. payloads) that have not
  fully arrived are collected as a list of read-only slices of the fed ``bytes`` objects
  and joined once at the end: a payload's bytes are copied once on receive (twice only for
  a first fragment that had to be buffered privately behind an earlier leftover).
- No memoryview onto the private bytearray outlives a method call (a live export would
  forbid resizing it).
"""

from __future__ import annotations

from struct import Struct
from typing import Any

__all__ = ["COLLECT_THRESHOLD", "ReceiveBuffer"]

#: Blocks at least this big that are not yet complete are collected piecewise, not buffered.
COLLECT_THRESHOLD = 64 * 1024

_SMALL = 4096  # below this, copying a bytearray slice twice beats making a memoryview

_Chunk = bytes | bytearray | memoryview


class ReceiveBuffer:
    """Bytes received but not yet consumed; see the module docstring."""

    __slots__ = ("_data", "_pieces", "_pos", "_want")

    def __init__(self) -> None:
        self._data: _Chunk = b""  # bytearray when private, else read-only bytes/memoryview
        self._pos = 0
        self._pieces: list[_Chunk] = []  # parts of a block being collected
        self._want = 0  # bytes still missing from the block being collected

    def __len__(self) -> int:
        """Bytes available to read (not counting a block being collected)."""
        return len(self._data) - self._pos

    @property
    def empty(self) -> bool:
        """True when nothing at all is buffered, not even part of a collected block."""
        return self._pos >= len(self._data) and not self._pieces

    def feed(self, data: _Chunk) -> None:
        """Append ``data``; ``bytes`` is kept by reference, other types are copied."""
        if type(data) is not bytes:
            data = bytes(data)
        if not data:
            return
        if self._want:
            data = self._collect(data)
            if not data:
                return
        if self._pos >= len(self._data):
            self._data = data
            self._pos = 0
        elif type(self._data) is bytearray:
            if self._pos > len(self._data) >> 1:
                del self._data[: self._pos]
                self._pos = 0
            self._data += data
        else:
            with memoryview(self._data) as view:
                fresh = bytearray(view[self._pos :])
            fresh += data
            self._data = fresh
            self._pos = 0

    def _collect(self, data: _Chunk) -> _Chunk:
        """Route the front of ``data`` into the block being collected; return the rest."""
        view = memoryview(data)
        self._pieces.append(view[: self._want])
        used = min(self._want, len(data))
        self._want -= used
        return view[used:] if used < len(data) else b""

    def prefix(self, size: int) -> bytes:
        """Up to ``size`` available bytes, without consuming them."""
        return bytes(self._data[self._pos : self._pos + size])

    def unpack(self, layout: Struct) -> tuple[Any, ...] | None:
        """Consume and decode ``layout.size`` bytes, or None (consuming nothing) if fewer."""
        pos = self._pos
        if len(self._data) - pos < layout.size:
            return None
        self._pos = pos + layout.size
        return layout.unpack_from(self._data, pos)

    def read(self, size: int) -> bytes:
        """Consume and return ``size`` bytes; the caller checked they are available."""
        data, start = self._data, self._pos
        end = self._pos = start + size
        if type(data) is bytes:
            return data[start:end]
        if size <= _SMALL:
            return bytes(data[start:end])
        with memoryview(data) as view:
            return bytes(view[start:end])

    def take(self, size: int) -> bytes | None:
        """Consume and return the next ``size`` bytes, or None until they have all arrived.

        After a None, call again (with the same size) once more data was fed.
        """
        if self._pieces:
            if self._want:
                return None
            block = b"".join(self._pieces)
            self._pieces.clear()
            return block
        available = len(self._data) - self._pos
        if available >= size:
            return self.read(size)
        if size < COLLECT_THRESHOLD:
            return None
        # Start collecting: keep what is here, later fed data goes straight into _pieces.
        if type(self._data) is bytearray:
            self._pieces.append(self.read(available))
        else:
            self._pieces.append(memoryview(self._data)[self._pos :])
        self._data = b""
        self._pos = 0
        self._want = size - available
        return None
