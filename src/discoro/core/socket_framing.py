"""The message framing of `AsyncSocket.send_msg`/`recv_msg` (reference 1.11): a 4-byte
big-endian unsigned length, then that many bytes of payload. A message that does not fit
in the length field is refused before anything is sent."""

from __future__ import annotations

import struct

HEADER = struct.Struct(">L")
HEADER_SIZE = HEADER.size
MAX_MESSAGE = 2**32 - 1


def framed(data: bytes | bytearray | memoryview) -> bytes:
    """``data`` with its length in front, ready for ``sendall``."""
    size = len(memoryview(data).cast("B"))
    if size > MAX_MESSAGE:
        raise ValueError(f"a message holds at most {MAX_MESSAGE} bytes, not {size}")
    return HEADER.pack(size) + bytes(data)


def body_size(header: bytes) -> int:
    """The payload size a complete header announces."""
    (size,) = HEADER.unpack(header)
    return int(size)
