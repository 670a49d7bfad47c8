"""Where a server process lives on disk: its working directory and its PID file.

The programs' default root is per user, `user_root` (``<tmp>/discoro-<uid>``, mode 0700,
refused if someone else owns it or it is a symlink): several users of one machine never
share, or wipe, each other's directories.

Layout (reference 4): ``<dest root>/discoro/proc-<i>/`` is the working directory of server
process *i* (wiped at start and at every computation close) and ``<dest root>/discoro/
proc-<i>.pid`` holds its PID while it runs. ``<dest root>/discoro/`` is also the *node
directory* (later-versions D8): the parent of every server's working directory, where the
servers also write the current computation's files (removed when it closes).

Rules:
- A PID file blocks a start only if its PID is alive *and* that process is a discoro server;
  anything else is stale and is removed (the original left stale files that blocked restarts).
- Claiming is atomic (``O_EXCL``), so two processes started for the same index cannot both
  win.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path, PurePath
from typing import Any

from discoro.core.userdir import user_root as user_root  # the programs find it here
from discoro.core.userdir import user_root_text as user_root_text

SERVER_MODULE = "discoro.cluster.server_main"


def dest_root(options: dict[str, Any]) -> Path:
    """The root of received files for ``options`` (as the network layer computes it)."""
    root = options.get("dest_path") or user_root()
    return Path(root).resolve()


def procs_dir(options: dict[str, Any]) -> Path:
    return dest_root(options) / "discoro"


def workdir(options: dict[str, Any], index: int) -> Path:
    return procs_dir(options) / f"proc-{index}"


def pidfile(options: dict[str, Any], index: int) -> Path:
    return procs_dir(options) / f"proc-{index}.pid"


def is_discoro_server(pid: int) -> bool:
    """Whether ``pid`` is a live process running a discoro server (or node)."""
    if pid <= 0 or not _alive(pid):
        return False
    import psutil

    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except psutil.ZombieProcess:
        return False
    except psutil.Error:  # gone meanwhile, or not ours to inspect
        return _alive(pid)
    return SERVER_MODULE in cmdline


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def holder(path: Path) -> int | None:
    """The PID of the live discoro server that holds ``path`` (None if free or stale)."""
    if not path.exists():
        return None
    pid = read_pid(path)
    if pid == os.getpid():
        return None
    return pid if is_discoro_server(pid) else None


def claim(path: Path) -> int | None:
    """Write our PID into ``path``; None on success, else the PID of the live holder.
    A stale file is replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pid = holder(path)
            if pid is not None:
                return pid
            remove(path)
            continue
        with os.fdopen(fd, "w") as stream:
            stream.write(f"{os.getpid()}\n")
        return None
    return read_pid(path) or -1


def remove(path: Path, pid: int | None = None) -> None:
    """Remove ``path`` (only if it holds ``pid``, when given)."""
    if pid is not None and read_pid(path) != pid:
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def reset_dir(path: Path) -> None:
    """Make ``path`` an empty directory."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


def clean(options: dict[str, Any]) -> list[Path]:
    """Remove stale PID files and the directories of processes not running; what was
    removed (``--clean``)."""
    base = procs_dir(options)
    removed: list[Path] = []
    if not base.is_dir():
        return removed
    busy: set[str] = set()
    for pid_path in base.glob("proc-*.pid"):
        if holder(pid_path) is None:
            remove(pid_path)
            removed.append(pid_path)
        else:
            busy.add(pid_path.name[: -len(".pid")])
    for entry in base.glob("proc-*"):
        if entry.is_dir() and entry.name not in busy:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


_NODE_OWN = re.compile(r"proc-\d+(\.pid)?|scheduler")


def node_reserved(relative: PurePath) -> bool:
    """Whether ``relative`` (under the node directory) is the node's own: a server's working
    directory or PID file, or the scheduler's directory (a `NodeLocation` transfer may not
    write or delete it)."""
    parts = relative.parts
    return bool(parts) and _NODE_OWN.fullmatch(parts[0]) is not None


def remove_received(paths: list[Path], node_dir: Path) -> None:
    """Remove files that were received into ``node_dir`` (`NodeLocation` transfers), and
    the directories they leave empty, never ``node_dir`` or anything outside it."""
    root = node_dir.resolve()
    for path in paths:
        if not path.is_relative_to(root) or path == root:
            continue
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            path.unlink()
        directory = path.parent
        while directory != root and directory.is_relative_to(root):
            try:
                directory.rmdir()
            except OSError:
                break
            directory = directory.parent


def empty_directory(path: Path) -> None:
    """Delete everything inside ``path`` (not ``path`` itself)."""
    if not path.is_dir():
        return
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
