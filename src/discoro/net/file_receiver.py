"""The receiving side of file transfer: the ``file_*`` and ``del_file`` handlers.

See `discoro.net.files` for the exchange. Invariants:
- Nothing is written outside ``dest_path`` (or the node directory, for requests that name
  it: `_root`): the name must be a plain file name, ``dir`` a
  relative path, and the target directory, with symlinks resolved, must lie under
  ``dest_path`` (checked again after the directories are made).
- No received file is ever seen half-written: data goes to a hidden temporary file in the
  target directory, which gets its mode bits and atime/mtime and is then renamed over the
  target in one step. On any failure (refusal, write error, size mismatch, more than
  ``max_file_size`` bytes, the sender's link lost, ``IDLE_TIMEOUT`` seconds without data)
  the temporary file and the directories this transfer made are removed, with one log line.
- Received mode bits are masked to 0o777: a peer cannot plant set-uid files.
Handlers run on the loop thread; chunks are written with plain sequential writes.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from discoro.core.log import logger
from discoro.net.files import (
    IDLE_TIMEOUT,
    MODE_BITS,
    REMEMBERED_REFUSALS,
    SAME_MTIME_NS,
    Handler,
    Key,
    _inside,
    _plain_name,
    _Refused,
    _relative_dir,
)
from discoro.wire.messages import Message

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Mapping

    from discoro.net.link import Link
    from discoro.net.network import Network
    from discoro.net.peers import Peer


@dataclass(eq=False)
class _Incoming:
    """One transfer being received."""

    sender: str
    target: Path
    temp: Path
    out: IO[bytes]
    size: int
    mode: int
    atime_ns: int
    mtime_ns: int
    made_dirs: list[Path]
    received: int = 0
    last_heard: float = field(default_factory=time.monotonic)
    timer: asyncio.TimerHandle | None = None
    link: Link | None = None
    on_lost: Callable[[Any], None] | None = None
    node_file: bool = False  # written into the node directory


class FileReceiver:
    """The receiving side: the ``file_*`` and ``del_file`` handlers and their transfers."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.incoming: dict[Key, _Incoming] = {}
        self.refused: dict[Key, str] = {}  # why recent transfers were dropped

    def handlers(self) -> dict[str, Handler]:
        return {
            "file_begin": self.on_begin,
            "file_chunk": self.on_chunk,
            "file_end": self.on_end,
            "del_file": self.on_del,
        }

    # -- handlers -------------------------------------------------------------------------

    def on_begin(self, peer: Peer, message: Message) -> None:
        fields = message.fields
        key = _key(peer, fields)
        try:
            verdict = self._begin(peer, key, fields)
        except (_Refused, OSError) as exc:
            logger.warning("refused file %r from %s: %s", fields.get("n"), peer, exc)
            self.net.reply(peer, message.rid, {"r": -1, "e": str(exc)})
            return
        self.net.reply(peer, message.rid, verdict)

    def on_chunk(self, peer: Peer, message: Message) -> None:
        key = _key(peer, message.fields)
        record = self.incoming.get(key)
        if record is None:
            if key not in self.refused:
                self._remember(key, "data for an unknown transfer")
                logger.warning("refused file data from %s for unknown transfer %r", peer, key[1])
                self._tell_sender(peer, key, "data for an unknown transfer")
            return
        data = message.payload or b""
        try:
            _check_size(record, len(data), self.net.max_file_size)
            record.out.write(data)
        except (_Refused, OSError) as exc:
            self._drop(key, str(exc))
            self._tell_sender(peer, key, str(exc))
            return
        record.received += len(data)
        record.last_heard = time.monotonic()

    def on_end(self, peer: Peer, message: Message) -> None:
        fields = message.fields
        key = _key(peer, fields)
        if not message.rid:  # a notice: the sender cancelled, or (to a sender) we refused
            if "refused" in fields:
                self.net._outbox().refuse(fields.get("x"), str(fields["refused"]))
            elif key in self.incoming:
                self._drop(key, f"cancelled by the sender: {fields.get('cancel')}")
            return
        record = self.incoming.get(key)
        if record is None:
            reason = self.refused.pop(key, "unknown transfer")
            self.net.reply(peer, message.rid, {"r": -1, "e": reason})
            return
        try:
            self._finish(key, record, fields.get("s"))
        except (_Refused, OSError) as exc:
            self._drop(key, str(exc))
            self.refused.pop(key, None)
            self.net.reply(peer, message.rid, {"r": -1, "e": str(exc)})
            return
        logger.debug("received %s (%d bytes) from %s", record.target, record.size, peer)
        self.net.reply(peer, message.rid, {"r": 0})

    def on_del(self, peer: Peer, message: Message) -> None:
        fields = message.fields
        try:
            root = self._root(fields)
            path = _inside(root, _relative_dir(fields.get("d"))) / _plain_name(fields.get("n"))
            self._check_reserved(fields, root, path)
            if stat.S_ISDIR(path.lstat().st_mode):
                raise _Refused(f"{path} is a directory")
            path.unlink()
            _prune(path.parent, root)
        except (_Refused, OSError) as exc:
            logger.warning("refused to delete %r for %s: %s", fields.get("n"), peer, exc)
            self.net.reply(peer, message.rid, {"r": -1, "e": str(exc)})
            return
        self.net.reply(peer, message.rid, {"r": 0})

    # -- steps ----------------------------------------------------------------------------

    def _begin(self, peer: Peer, key: Key, fields: dict[str, Any]) -> dict[str, Any]:
        name = _plain_name(fields.get("n"))
        size, mode, atime_ns, mtime_ns = (_count(fields.get(k), k) for k in ("s", "m", "a", "t"))
        limit = self.net.max_file_size
        if limit and size > limit:
            raise _Refused(f"{size} bytes is over max_file_size ({limit})")
        if key in self.incoming:
            raise _Refused(f"transfer {key[1]!r} is already under way")
        root = self._root(fields)
        directory = _inside(root, _relative_dir(fields.get("d")))
        target = directory / name
        self._check_reserved(fields, root, target)
        existing = _compare(target, size, mode, mtime_ns, bool(fields.get("o")))
        if existing is not None:
            return existing
        made = _make_dirs(directory, root)
        try:
            fd, temp = tempfile.mkstemp(prefix=f".{name[:200]}.", suffix=".part", dir=directory)
        except OSError:
            _remove_dirs(made)
            raise
        record = _Incoming(
            sender=str(peer),
            target=target,
            temp=Path(temp),
            out=os.fdopen(fd, "wb"),
            size=size,
            mode=mode & MODE_BITS,
            atime_ns=atime_ns,
            mtime_ns=mtime_ns,
            made_dirs=made,
            node_file=bool(fields.get("nd")),
        )
        self.incoming[key] = record
        self._watch(key, record, peer)
        return {"r": 0}

    def _finish(self, key: Key, record: _Incoming, declared: Any) -> None:
        if record.received != record.size or declared != record.size:
            raise _Refused(
                f"size mismatch: expected {record.size}, received {record.received}, "
                f"sender says {declared}"
            )
        record.out.close()
        os.chmod(record.temp, record.mode)
        os.utime(record.temp, ns=(record.atime_ns, record.mtime_ns))
        os.replace(record.temp, record.target)
        self._forget(key, record)
        if record.node_file:
            self.net.note_node_file(record.target)

    def _root(self, fields: Mapping[str, object]) -> Path:
        """The directory a request's paths are under: the node directory when it names it
        (``nd``), else ``dest_path``."""
        if not fields.get("nd"):
            return self.net.dest_path
        node_path = self.net.node_path
        if node_path is None:
            raise _Refused("this peer has no node directory (not a node's server)")
        return node_path

    def _check_reserved(self, fields: Mapping[str, object], root: Path, target: Path) -> None:
        if fields.get("nd") and self.net.node_reserved(target.relative_to(root)):
            raise _Refused(f"{target.relative_to(root)} belongs to the node itself")

    def _watch(self, key: Key, record: _Incoming, peer: Peer) -> None:
        """Drop the transfer when its link is lost or it idles for IDLE_TIMEOUT."""
        link = peer.link
        if link is not None:
            record.link = link
            record.on_lost = lambda _: self._drop(key, "the connection to the sender was lost")
            link.lost.add_done_callback(record.on_lost)
        record.timer = self.net.loop.call_later(IDLE_TIMEOUT, self._check_idle, key)

    def _check_idle(self, key: Key) -> None:
        record = self.incoming.get(key)
        if record is None:
            return
        idle = time.monotonic() - record.last_heard
        if idle >= IDLE_TIMEOUT:
            self._drop(key, f"no data for {idle:.1f} s")
        else:
            record.timer = self.net.loop.call_later(IDLE_TIMEOUT - idle, self._check_idle, key)

    def _drop(self, key: Key, reason: str) -> None:
        """End a transfer that failed: remove what it wrote, log one line, remember why."""
        record = self.incoming.get(key)
        if record is None:
            return
        self._forget(key, record)
        record.out.close()
        try:
            record.temp.unlink(missing_ok=True)
        except OSError as exc:
            logger.debug("cannot remove %s: %r", record.temp, exc)
        _remove_dirs(record.made_dirs)
        self._remember(key, reason)
        logger.warning("dropped incoming file %s from %s: %s", record.target, record.sender, reason)

    def _forget(self, key: Key, record: _Incoming) -> None:
        self.incoming.pop(key, None)
        if record.timer is not None:
            record.timer.cancel()
        if record.link is not None and record.on_lost is not None:
            record.link.lost.remove_done_callback(record.on_lost)

    def _remember(self, key: Key, reason: str) -> None:
        self.refused[key] = reason
        while len(self.refused) > REMEMBERED_REFUSALS:
            del self.refused[next(iter(self.refused))]

    def _tell_sender(self, peer: Peer, key: Key, reason: str) -> None:
        self.net.post(peer.location, Message("file_end", 0, {"x": key[1], "refused": reason}))


def _key(peer: Peer, fields: dict[str, Any]) -> Key:
    return (peer.sid or str(peer.location), fields.get("x"))


def _count(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise _Refused(f"bad {what!r} field {value!r}")
    return value


def _check_size(record: _Incoming, more: int, limit: int | None) -> None:
    total = record.received + more
    if total > record.size:
        raise _Refused(f"more data ({total} bytes) than announced ({record.size})")
    if limit and total > limit:
        raise _Refused(f"{total} bytes is over max_file_size ({limit})")


def _compare(
    target: Path, size: int, mode: int, mtime_ns: int, overwrite: bool
) -> dict[str, Any] | None:
    """The verdict when ``target`` exists and must not be replaced; None to go on."""
    try:
        st = target.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        raise _Refused(f"{target} is a directory")
    if (
        stat.S_ISREG(st.st_mode)
        and st.st_size == size
        and stat.S_IMODE(st.st_mode) & MODE_BITS == mode & MODE_BITS
        and abs(st.st_mtime_ns - mtime_ns) <= SAME_MTIME_NS
    ):
        return {"r": 1}
    if overwrite:
        return None
    times = (st.st_atime, st.st_mtime, st.st_ctime, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)
    return {"r": 2, "st": [*tuple(st), *times]}


def _make_dirs(directory: Path, root: Path) -> list[Path]:
    """Make ``directory`` and its missing parents (deepest first in the result); re-check
    that it is still under ``root`` once made."""
    missing: list[Path] = []
    probe = directory
    while probe != root and not probe.exists():
        missing.append(probe)
        probe = probe.parent
    directory.mkdir(parents=True, exist_ok=True)
    if not directory.resolve().is_relative_to(root):
        _remove_dirs(missing)
        raise _Refused(f"{directory} escapes the destination directory")
    return missing


def _remove_dirs(dirs: list[Path]) -> None:
    for directory in dirs:
        try:
            directory.rmdir()
        except OSError:
            return


def _prune(directory: Path, root: Path) -> None:
    """Remove empty directories from ``directory`` up to, not including, ``root``."""
    while directory != root and directory.is_relative_to(root):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def handlers(net: Network) -> dict[str, Handler]:
    """The ops of the receiving side."""
    return FileReceiver(net).handlers()
