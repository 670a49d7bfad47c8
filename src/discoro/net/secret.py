"""The cluster secret: the trust boundary of discoro.

Processes pair only when they share the secret. Precedence: an explicit ``secret`` option,
else the ``DISCORO_SECRET`` environment variable, else the file ``~/.discoro/secret``, which is
created with mode 0600 (in a 0700 folder) holding 32 random bytes as hex on first use (as
Erlang's cookie). So one machine works with no setup, and machines pair when the file is
copied or ``-s`` is passed.

Invariants:
- The secret is never empty: an empty option or variable counts as not given, and an empty
  secret file is an error that names the file (an empty key would authenticate anyone who
  also has none).
- The file appears complete or not at all: it is written under a temporary name and linked
  into place, so processes that start together all read the same secret, never a partly
  written one, and the first one to link wins.
- A secret file that others may read is used, with one warning naming the file.
- A secret given explicitly (``secret=``, ``-s``) shorter than `SHORT_SECRET` characters is
  used, with one warning per process (scrypt slows guessing; it cannot make a short
  secret long).
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from discoro.core.log import logger

SECRET_ENV = "DISCORO_SECRET"
SHORT_SECRET = 16
_warned_short = False

__all__ = ["SECRET_ENV", "resolve_secret", "secret_file"]


def secret_file() -> Path:
    return Path(os.path.expanduser("~")) / ".discoro" / "secret"


def resolve_secret(secret: str | bytes | None) -> bytes:
    """The secret bytes to authenticate with (see the module docstring for precedence)."""
    if secret:
        value = secret.encode() if isinstance(secret, str) else bytes(secret)
        _warn_if_short(value)
        return value
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return from_env.encode()
    path = secret_file()
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    return _create(path)


def _warn_if_short(secret: bytes) -> None:
    global _warned_short
    if len(secret) < SHORT_SECRET and not _warned_short:
        _warned_short = True
        logger.warning(
            "the cluster secret is only %d characters long: anyone who sees one handshake can "
            "guess it offline; use at least %d random characters",
            len(secret),
            SHORT_SECRET,
        )


def _read(path: Path) -> bytes:
    with open(path, "rb") as stream:
        mode = os.fstat(stream.fileno()).st_mode
        value = stream.read().strip()
    if not value:
        raise ValueError(
            f"the secret file {path} is empty: delete it (a new one is made) or "
            f"put the cluster's secret in it"
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "secret file %s can be read by others (mode %o); chmod 600 it", path, stat.S_IMODE(mode)
        )
    return value


def _create(path: Path) -> bytes:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = secrets.token_hex(32).encode()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(value + b"\n")
        try:
            os.link(temporary, path)  # atomic, and fails if another process got there first
        except FileExistsError:
            return _read(path)
        logger.info("made a new cluster secret in %s (copy it to pair other machines)", path)
        return value
    finally:
        os.unlink(temporary)
