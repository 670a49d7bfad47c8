"""Key schedule: the cluster secret is stretched once, and every key discoro uses is derived.

Invariants:
- The raw secret is only ever scrypt's input. Nothing that travels or can be sniffed (handshake
  MACs, session keys, discovery MACs, status page tokens) is keyed by it directly, so each
  offline guess of a secret costs an attacker one scrypt run (16 MiB, ~50 ms on a 2 GHz core),
  not one HMAC.
- Every derived key has its own label, so a key made for one purpose never serves another.
- `stretch` runs once per process and secret (cached): ~50 ms at start, never per connection.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_SALT = b"discoro cluster secret, stretched (v2)"
KEY_SIZE = 32

__all__ = ["KEY_SIZE", "derive", "hkdf", "stretch"]


@lru_cache(maxsize=4)
def stretch(secret: bytes) -> bytes:
    """The cluster's master key: ``secret`` through scrypt (memory-hard)."""
    if not secret:
        raise ValueError("the cluster secret must not be empty")
    return hashlib.scrypt(
        secret,
        salt=SCRYPT_SALT,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=64 * 2**20,
        dklen=KEY_SIZE,
    )


def hkdf(key: bytes, salt: bytes, info: bytes, length: int = KEY_SIZE) -> bytes:
    """HKDF-SHA256 (RFC 5869): extract with ``salt``, expand with ``info``."""
    if not 0 < length <= 255 * 32:
        raise ValueError(f"HKDF-SHA256 gives 1 to {255 * 32} bytes, not {length}")
    prk = hmac.digest(salt or bytes(32), key, "sha256")
    blocks: list[bytes] = []
    block = b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        blocks.append(block)
    return b"".join(blocks)[:length]


def derive(master: bytes, label: str) -> bytes:
    """The key for one purpose (``label``, e.g. ``"discovery"``) from the master key."""
    return hkdf(master, b"", b"discoro key: " + label.encode())
