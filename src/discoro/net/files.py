"""File transfer between peers: `send_file`, `del_file` and the receiving side (reference 2.10).

A transfer rides the peers' authenticated link as ordinary messages:

    sender                                   receiver
    file_begin  (request: x, n, d, s, m, a, t, o)   -> verdict: r=1 identical, r=2 + st (a
                                                       different file, not overwritten),
                                                       r=0 go, r=-1 + e refused
    file_chunk  (x + payload bytes) ...             -> written to a temporary file
    file_end    (request: x, s)                     -> r=0 renamed into place, or r=-1 + e

``x`` is a transfer id chosen by the sender; the receiver keys a transfer by (sender's sid,
x), so transfers from several peers, or several from one peer, are independent. A
``file_end`` without a request id is a notice, not a request: ``cancel`` (the sender gave
up) or ``refused`` (the receiver dropped the transfer mid-way, so the sender stops early).

Invariants of the receiving side:
- Nothing is written outside ``dest_path``: the name must be a plain file name, ``dir`` a
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

import asyncio
import os
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path, PurePath
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

from discoro.core.log import logger
from discoro.net.location import Location
from discoro.wire.messages import Message

if TYPE_CHECKING:
    from discoro.net.link import Link
    from discoro.net.network import Network
    from discoro.net.peers import Peer

CHUNK_SIZE = 1 << 20
IDLE_TIMEOUT = 30.0  # seconds a started transfer may stay without data (read at each check)
MODE_BITS = 0o777
SAME_MTIME_NS = 1_000_000_000  # mtimes within 1 s count as the same
REMEMBERED_REFUSALS = 256

T = TypeVar("T")
Handler = Callable[["Peer", Message], None]
Verdict = int | os.stat_result


class _Refused(Exception):
    """Why a transfer cannot go on (one log line, then -1 or an r=-1 reply)."""


# -- checks shared by both sides -------------------------------------------------------------


def _plain_name(name: Any) -> str:
    if not isinstance(name, str) or name in ("", ".", "..") or "\0" in name:
        raise _Refused(f"bad file name {name!r}")
    if "/" in name or os.sep in name or (os.altsep and os.altsep in name):
        raise _Refused(f"file name {name!r} is not a plain name")
    return name


def _basename(file: Any) -> str:
    try:
        return _plain_name(os.path.basename(os.fspath(file)))
    except TypeError:
        raise _Refused(f"{file!r} is not a path") from None


def _relative_dir(dir: Any) -> str | None:
    if dir is None or dir == "":
        return None
    if not isinstance(dir, str) or "\0" in dir:
        raise _Refused(f"bad directory {dir!r}")
    if os.path.isabs(dir) or PurePath(dir).anchor:
        raise _Refused(f"directory {dir!r} is not a relative path")
    return dir


def _inside(root: Path, dir: str | None) -> Path:
    """``root/dir`` with symlinks resolved; _Refused if that is not under ``root``."""
    target = (root / dir).resolve() if dir else root
    if not target.is_relative_to(root):
        raise _Refused(f"directory {dir!r} escapes the destination directory")
    return target


# -- the sending side ------------------------------------------------------------------------


class _Outbox:
    """Transfer ids of this process's outgoing transfers, and early refusals by receivers."""

    def __init__(self) -> None:
        self.ids = count(1)
        self.refusals: dict[int, str | None] = {}

    def open(self) -> int:
        xid = next(self.ids)
        self.refusals[xid] = None
        return xid

    def close(self, xid: int) -> None:
        self.refusals.pop(xid, None)

    def refuse(self, xid: Any, reason: str) -> None:
        if xid in self.refusals:
            self.refusals[xid] = reason

    def check(self, xid: int) -> None:
        reason = self.refusals.get(xid)
        if reason is not None:
            raise _Refused(f"the peer dropped the transfer: {reason}")


class FileTransfer:
    """Mixin of `Network`: the sending side (`send_file`, `del_file`) and `set_dest_path`."""

    _file_outbox: _Outbox | None = None

    def _net(self) -> Network:
        return cast("Network", self)

    def _outbox(self) -> _Outbox:
        if self._file_outbox is None:
            self._file_outbox = _Outbox()
        return self._file_outbox

    async def send_file(
        self,
        location: Any,
        file: str | os.PathLike[str],
        dir: str | None = None,
        overwrite: bool = False,
        timeout: float | None = None,
    ) -> Verdict:
        """0 sent, 1 an identical file is there, the `os.stat_result` of a different file
        that was not overwritten, -1 on any error (logged)."""
        try:
            return await self._send_file(location, file, dir, overwrite, timeout)
        except _Refused as exc:
            logger.warning("send_file %s to %s failed: %s", file, location, exc)
            return -1

    async def del_file(
        self,
        location: Any,
        file: str | os.PathLike[str],
        dir: str | None = None,
        timeout: float | None = None,
    ) -> int:
        """Remove ``dest_path/[dir/]basename(file)`` at the peer; 0, or -1 (logged)."""
        net = self._net()
        try:
            fields = {"n": _basename(file), "d": _relative_dir(dir)}
            _check_location(location)
            await net.started()
            reply = await _ask(net, location, None, "del_file", fields, timeout)
            _check_reply(reply)
        except _Refused as exc:
            logger.warning("del_file %s at %s failed: %s", file, location, exc)
            return -1
        return 0

    def set_dest_path(self, path: str | os.PathLike[str]) -> None:
        """Spec 2.3: a path under the original root is used as is; any other is re-rooted
        under it (anchor stripped); the directory is made if missing."""
        net = self._net()
        root = net.dest_root
        wanted = Path(path)
        if wanted.is_absolute() and wanted.resolve().is_relative_to(root):
            target = wanted.resolve()
        else:
            target = (root / wanted.relative_to(wanted.anchor)).resolve()
            if not target.is_relative_to(root):
                raise ValueError(f"dest_path {os.fspath(path)!r} escapes {root}")
        target.mkdir(parents=True, exist_ok=True)
        net.dest_path = target

    async def _send_file(
        self, location: Any, file: Any, dir: Any, overwrite: bool, timeout: float | None
    ) -> Verdict:
        net = self._net()
        _check_location(location)
        dir = _relative_dir(dir)
        source, info = _open_source(file)
        outbox = self._outbox()
        with source:
            await net.started()
            xid = outbox.open()
            link: Link | None = None  # set while the receiver holds our unfinished transfer
            try:
                begin = {"x": xid, "d": dir, "o": bool(overwrite), **info}
                verdict = _verdict(await _ask(net, location, None, "file_begin", begin, timeout))
                if verdict is not None:
                    return verdict
                link = _current_link(net, location)
                sent = await _stream(net, location, link, source, xid, info["s"], timeout)
                outbox.check(xid)
                end = {"x": xid, "s": sent}
                _check_reply(await _ask(net, location, link, "file_end", end, timeout))
                link = None  # finished: nothing to cancel
                return 0
            finally:
                outbox.close(xid)
                if link is not None and not link.lost.done():  # the receiver holds a transfer
                    link.send(Message("file_end", 0, {"x": xid, "cancel": "sender gave up"}))


def _check_location(location: Any) -> None:
    if not isinstance(location, Location):
        raise _Refused(f"{location!r} is not a Location")


def _open_source(file: Any) -> tuple[IO[bytes], dict[str, Any]]:
    """The open file and what ``file_begin`` tells of it; _Refused unless readable+regular."""
    try:
        path = os.fspath(file)
        name = _basename(path)
        if not stat.S_ISREG(os.stat(path).st_mode):  # before open: a FIFO would block
            raise _Refused(f"{path!r} is not a regular file")
        source = open(path, "rb")  # closed by the caller's with
    except (OSError, TypeError) as exc:
        raise _Refused(f"cannot read {file!r}: {exc}") from None
    st = os.fstat(source.fileno())
    info = {
        "n": name,
        "s": st.st_size,
        "m": stat.S_IMODE(st.st_mode),
        "a": st.st_atime_ns,
        "t": st.st_mtime_ns,
    }
    return source, info


def _current_link(net: Network, location: Location) -> Link:
    peer = net.peers.get(location)
    link = peer.link if peer is not None else None
    if link is None:
        raise _Refused("the connection to the peer was lost")
    return link


async def _stream(
    net: Network,
    location: Location,
    link: Link,
    source: IO[bytes],
    xid: int,
    size: int,
    timeout: float | None,
) -> int:
    """Send the file's first ``size`` bytes as chunks; how many were sent."""
    outbox = net._outbox()
    sent = 0
    while sent < size:
        await _bounded(link.drained(), timeout, "the peer does not take data")
        data = await asyncio.to_thread(source.read, min(CHUNK_SIZE, size - sent))
        if not data:
            break  # the file shrank: the receiver will see the size mismatch
        outbox.check(xid)
        if _current_link(net, location) is not link or link.lost.done():
            raise _Refused("the connection to the peer was lost")
        link.send(Message("file_chunk", 0, {"x": xid}, data))
        sent += len(data)
    return sent


async def _bounded(awaitable: Awaitable[T], timeout: float | None, why: str) -> T:
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        raise _Refused(f"{why} (timed out after {timeout} s)") from None


async def _ask(
    net: Network,
    location: Location,
    link: Link | None,
    op: str,
    fields: dict[str, Any],
    timeout: float | None,
) -> Message:
    """A request's reply; _Refused when none comes (timeout, peer offline, ``link`` lost)."""
    if link is None:
        peer = net.peers.get(location)
        link = peer.link if peer is not None else None
    asking = asyncio.ensure_future(net.request(location, op, fields, None, timeout))
    try:
        if link is not None:
            await asyncio.wait((asking, link.lost), return_when=asyncio.FIRST_COMPLETED)
        reply = await asking if link is None or asking.done() else None
    finally:
        asking.cancel()
    if reply is None:
        raise _Refused(f"no reply to {op}: the peer is offline, lost, or timed out")
    return reply


def _verdict(reply: Message) -> Verdict | None:
    """The receiver's answer to ``file_begin``: None means go on and send the data."""
    result = reply.fields.get("r")
    if result == 0:
        return None
    if result == 1:
        return 1
    if result == 2:
        try:
            return os.stat_result(reply.fields["st"])
        except (KeyError, TypeError, ValueError):
            raise _Refused(f"the peer sent a bad stat record: {reply.fields!r}") from None
    raise _Refused(f"the peer refused: {reply.fields.get('e', reply.fields)}")


def _check_reply(reply: Message) -> None:
    if reply.fields.get("r") != 0:
        raise _Refused(f"the peer refused: {reply.fields.get('e', reply.fields)}")


# -- the receiving side ----------------------------------------------------------------------

Key = tuple[str, Any]


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
            root = self.net.dest_path
            path = _inside(root, _relative_dir(fields.get("d"))) / _plain_name(fields.get("n"))
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
        root = self.net.dest_path
        directory = _inside(root, _relative_dir(fields.get("d")))
        target = directory / name
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
