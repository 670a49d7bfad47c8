"""Make a copy of this tree whose record cipher is a no-op that copies (bench only).

To split what AES-256-GCM costs from the rest of the record path, `net_bench.py --vs` runs
paired rounds against a copy of ``src`` in which `discoro.wire.record.aes_gcm` returns a
cipher that copies the plaintext and appends 16 zero bytes as the "tag" (records, lanes,
framing, counters and buffers unchanged). The switch lives only in that copy, never in the
installed package, so no user can turn encryption off by accident::

    python bench/noop_cipher_tree.py /tmp/noop
    python bench/net_bench.py --only rtt --rounds 9 --vs /tmp/noop/src

The copy refuses to overwrite a directory that exists (pick a fresh one).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

_SRC = Path(__file__).resolve().parents[1] / "src"

_NOOP = """

class _NoopCipher:  # bench-only copy of the tree (bench/noop_cipher_tree.py)
    def encrypt(self, nonce, data, associated_data):
        return bytes(data) + bytes(16)

    def encrypt_into(self, nonce, data, associated_data, buf):
        size = len(data)
        buf[:size] = data
        buf[size : size + 16] = bytes(16)

    def decrypt_into(self, nonce, data, associated_data, buf):
        buf[:] = data[: len(data) - 16]


def aes_gcm(key):
    return _NoopCipher()
"""


def patched_tree(target: Path, addition: str, needs: tuple[str, ...] = ()) -> Path:
    """Copy ``src`` to ``target/src`` and append ``addition`` to the copy's wire/record.py
    (its later ``aes_gcm`` wins at import); ``needs``: names record.py must still define.
    The copy's ``src``."""
    if target.exists():
        raise SystemExit(f"{target} exists: pick a fresh directory")
    copy = target / "src"
    shutil.copytree(_SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    record = copy / "discoro" / "wire" / "record.py"
    text = record.read_text()
    for needed in ("def aes_gcm(key: bytes) -> Cipher:", *needs):
        if needed not in text:
            raise SystemExit(f"{record}: {needed!r} not found; update this script")
    record.write_text(text + addition)
    return copy


def make(target: Path) -> Path:
    """Copy ``src`` to ``target/src`` with the no-op cipher; the copy's ``src``."""
    return patched_tree(target, _NOOP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="a directory that does not exist yet")
    args = parser.parse_args()
    print(make(args.target), file=sys.stdout)


if __name__ == "__main__":
    main()
