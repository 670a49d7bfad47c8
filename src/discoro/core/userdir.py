"""The default root for received files and server working directories: one per user.

``<tmp>/discoro-<uid>``, made with mode 0700. It is refused (ValueError naming the path) if it
is not a directory of ours that only we can write in: a symlink, another user's directory, or
one others can write in. So several users of one machine never share, or wipe, each other's
files, and nobody can plant a directory there for a victim's server to work in.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["user_root", "user_root_text"]


def user_root_text() -> str:
    """Where `user_root` is (without creating it)."""
    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    return os.path.join(tempfile.gettempdir(), f"discoro-{uid}")


def user_root() -> Path:
    """This user's private root directory, made if needed; ValueError if it exists but is
    not safely ours."""
    path = user_root_text()
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise ValueError(f"{path} is not a directory (a symlink?); remove it or use --dest_path")
    if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o022):
        raise ValueError(
            f"{path} belongs to another user or others can write in it; "
            "remove it or use --dest_path"
        )
    return Path(path)
