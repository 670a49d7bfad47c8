"""Key schedule: the cluster secret is stretched once, and every key discoro uses is derived.

Invariants:
- The raw secret is only ever scrypt's input. Nothing that travels or can be sniffed (handshake
  MACs, session keys, discovery MACs, status page tokens) is keyed by it directly, so each
  offline guess of a secret costs an attacker one scrypt run (16 MiB, ~50 ms on a 2 GHz core),
  not one HMAC.
- Every derived key has its own label, so a key made for one purpose never serves another.
- `stretch` runs once per process and secret (cached): ~50 ms at start, never per connection.
- A parent that stretched the secret may hand the master key to a child it starts
  (`handoff`, in the child's environment, never on a command line); `master_key` takes it
  only when it carries a check value matching the child's own secret, so a stale or foreign
  hand-off falls back to scrypt instead of yielding a key that cannot pair.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_SALT = b"discoro cluster secret, stretched (v2)"
KEY_SIZE = 32

#: The environment variable a parent process hands the master key to its children in.
MASTER_KEY_ENV = "DISCORO_MASTER_KEY"

__all__ = ["KEY_SIZE", "MASTER_KEY_ENV", "derive", "handoff", "hkdf", "stretch"]


def stretch(secret: bytes) -> bytes:
    """The cluster's master key: ``secret`` through scrypt (memory-hard), or the key a parent
    process handed over for this same secret (see `handoff`)."""
    if not secret:
        raise ValueError("the cluster secret must not be empty")
    return _handed_over(secret) or _scrypt(secret)


@lru_cache(maxsize=4)
def _scrypt(secret: bytes) -> bytes:
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


def _check_value(master: bytes, secret: bytes) -> str:
    return hmac.digest(master, b"discoro master key of " + secret, "sha256")[:8].hex()


def handoff(secret: bytes) -> str:
    """The value of `MASTER_KEY_ENV` for a child that uses the same ``secret``."""
    master = stretch(secret)
    return f"{master.hex()}:{_check_value(master, secret)}"


_UNREAD = (b"", b"unread")
_handed: tuple[bytes, bytes] = _UNREAD  # (master key, check value) a parent handed over


def _handed_over(secret: bytes) -> bytes | None:
    """The master key a parent handed over, if its check value matches ``secret``. The
    environment variable is read once and removed, so our own children do not inherit it by
    accident."""
    global _handed
    if _handed is _UNREAD:
        key_hex, _, check_hex = os.environ.pop(MASTER_KEY_ENV, "").partition(":")
        try:
            master = bytes.fromhex(key_hex)
        except ValueError:
            master = b""
        if len(master) != KEY_SIZE:
            master = b""
        _handed = (master, check_hex.encode("ascii", "replace"))
    master, check = _handed
    if master and hmac.compare_digest(check, _check_value(master, secret).encode()):
        return master
    return None
