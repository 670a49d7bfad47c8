"""The cluster secret: the trust boundary of discoro.

Processes pair only when they share the secret. Precedence: an explicit ``secret`` option,
else the ``DISCORO_SECRET`` environment variable, else the file ``~/.discoro/secret``, which is
created with mode 0600 and 32 random bytes (hex) on first use (as Erlang's cookie). So one
machine works with no setup, and machines pair when the file is copied or ``-s`` is passed.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_ENV = "DISCORO_SECRET"


def secret_file() -> Path:
    return Path(os.path.expanduser("~")) / ".discoro" / "secret"


def resolve_secret(secret: str | bytes | None) -> bytes:
    """The secret bytes to authenticate with (see the module docstring for precedence)."""
    if secret:
        return secret.encode() if isinstance(secret, str) else bytes(secret)
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return from_env.encode()
    path = secret_file()
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as stream:
        stream.write(value + b"\n")
    return value
