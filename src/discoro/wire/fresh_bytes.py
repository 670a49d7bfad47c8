"""Fresh bytes filled in place: a large received payload handed up as ``bytes`` with no copy.

A raw ``bytes`` message (`net.payloads`) must arrive as ``bytes``; collected in a bytearray it
would cost a copy of the whole payload at the end (``bytes(bytearray)``: ~70 us per MiB
here). Instead, on CPython, `fresh_bytes` makes a bytes object whose contents are not yet
written (``PyBytes_FromStringAndSize(NULL, n)``: no zero fill either) together with a
writable memoryview over its storage; the socket and the cipher write the payload through
that view, and the bytes object is handed up once it is whole.

Invariants (the caller's discipline, `wire.buffer.ReceiveBuffer`):
- Nothing but the collector refers to the bytes object until every byte of it was written
  (so no one can hash it, compare it or see it change); then the view is released and never
  written through again. The view does not keep the bytes object alive: the collector holds
  the object for as long as it holds the view.
- Where this is not CPython (or ctypes is missing), `fresh_bytes` is None and callers use a
  bytearray (and a copy at the end) as before.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["fresh_bytes"]

_PyBUF_WRITE = 0x200


def _make() -> Callable[[int], tuple[bytes, memoryview]] | None:
    if sys.implementation.name != "cpython":
        return None
    try:
        import ctypes

        api = ctypes.pythonapi
    except (ImportError, AttributeError):  # pragma: no cover - a CPython without ctypes
        return None
    new_bytes = api.PyBytes_FromStringAndSize
    new_bytes.restype = ctypes.py_object
    new_bytes.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
    new_view = api.PyMemoryView_FromMemory
    new_view.restype = ctypes.py_object
    new_view.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
    offset = bytes.__basicsize__ - 1  # where ob_sval starts (the size counts its NUL)

    def fresh(size: int) -> tuple[bytes, memoryview]:
        """A new bytes object of ``size`` unwritten bytes and a writable view of them."""
        data: bytes = new_bytes(None, size)
        view: memoryview = new_view(id(data) + offset, size, _PyBUF_WRITE)
        return data, view

    data, view = fresh(3)  # check the layout once: a view that does not land is not used
    view[:] = b"abc"
    return fresh if data == b"abc" else None


#: ``fresh_bytes(size)``: ``(bytes, writable memoryview of it)``, or None where unsupported.
fresh_bytes = _make()
