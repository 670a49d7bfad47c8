"""Make a copy of this tree whose record cipher keeps one OpenSSL context per direction
(bench only; an experiment for issue 8, see bench/RESULTS.md).

`cryptography`'s AESGCM copies, sets up, uses, cleanses and frees an EVP context on every
call. This builds `kept_context_gcm.c` (next to this file; needs a C compiler, Python's
headers and OpenSSL's headers and libcrypto) into a copy of ``src`` in which
`discoro.wire.record.aes_gcm` returns a wrapper around it: same algorithm (AES-256-GCM), same
keys, nonces, associated data and record bytes, a bad tag still refused. Then compare::

    python bench/kept_context_tree.py /tmp/kept
    python bench/noop_cipher_tree.py /tmp/noop
    python bench/net_bench.py --only rtt --rounds 8 --vs /tmp/kept/src --vs /tmp/noop/src

The copy refuses to overwrite a directory that exists (pick a fresh one).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import sysconfig
from pathlib import Path

from noop_cipher_tree import patched_tree

_HERE = Path(__file__).resolve().parent

_KEPT = """

class _KeptContext:  # bench-only copy of the tree (bench/kept_context_tree.py)
    def __init__(self, key):
        import kept_context_gcm

        self._gcm, self._key = kept_context_gcm.Gcm, key
        self._seal = self._open = None

    def encrypt(self, nonce, data, associated_data):
        if self._seal is None:
            self._seal = self._gcm(self._key, True)
        return self._seal.encrypt(nonce, data, associated_data)

    def encrypt_into(self, nonce, data, associated_data, buf):
        buf[:] = self.encrypt(nonce, data, associated_data)

    def decrypt_into(self, nonce, data, associated_data, buf):
        if self._open is None:
            self._open = self._gcm(self._key, False)
        try:
            self._open.decrypt_into(nonce, data, associated_data, buf)
        except ValueError:
            raise InvalidTag() from None


def aes_gcm(key):
    return _KeptContext(key)
"""


def make(target: Path) -> Path:
    """Copy ``src`` to ``target/src`` with the kept-context cipher built in; the copy's src."""
    copy = patched_tree(target, _KEPT, ("InvalidTag",))
    module = copy / ("kept_context_gcm" + sysconfig.get_config_var("EXT_SUFFIX"))
    command = [
        "cc", "-O2", "-shared", "-fPIC", "-I" + sysconfig.get_paths()["include"],
        str(_HERE / "kept_context_gcm.c"), "-o", str(module), "-lcrypto",
    ]  # fmt: skip
    subprocess.run(command, check=True)
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="a directory that does not exist yet")
    args = parser.parse_args()
    print(make(args.target), file=sys.stdout)


if __name__ == "__main__":
    main()
