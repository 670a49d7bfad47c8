"""The only doors between the wire protocol and msgpack.

Invariants:
- Decoding never runs user code: no ext types at all (``max_ext_len=0`` refuses every ext,
  including msgpack's timestamp), strings must be UTF-8 (``raw=False``), map keys must be
  str or bytes (``strict_map_key=True``), and no length may exceed the input's own length,
  so a few hostile bytes cannot make us allocate much.
- Every decoding failure surfaces as `ProtocolError`; msgpack's own exceptions never escape.
- Encoding uses bin for bytes and str for text, so both survive a round trip distinctly.
"""

from __future__ import annotations

from typing import Any

import msgpack

from discoro.errors import ProtocolError

__all__ = ["new_packer", "pack", "unpack_map"]


def new_packer() -> msgpack.Packer:
    """A reusable packer (faster than `pack` in hot loops; not thread-safe)."""
    return msgpack.Packer(use_bin_type=True, datetime=False, autoreset=True)


def pack(obj: object) -> bytes:
    """Encode msgpack-native data; raises TypeError for anything else."""
    packed: bytes = msgpack.packb(obj, use_bin_type=True, datetime=False)
    return packed


def unpack_map(data: bytes | bytearray | memoryview, what: str) -> dict[str, Any]:
    """Decode ``data`` as exactly one msgpack map whose keys are all str.

    ``what`` names the thing being decoded in error messages ("frame control", ...).
    """
    size = len(data)
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            timestamp=0,
            max_str_len=size,
            max_bin_len=size,
            max_array_len=size,
            max_map_len=size,
            max_ext_len=0,
        )
    except (ValueError, TypeError, OverflowError) as exc:
        raise ProtocolError(f"malformed {what}: {str(exc) or type(exc).__name__}") from None
    if type(obj) is not dict:
        raise ProtocolError(f"malformed {what}: expected a map, got {type(obj).__name__}")
    for key in obj:
        if type(key) is not str:
            raise ProtocolError(f"malformed {what}: map key {key!r} is not a str")
    return obj
