"""File transfer between peers: `send_file`, `del_file` and the receiving side (reference 2.10).

A transfer rides the peers' authenticated link as ordinary messages:

    sender                                   receiver
    file_begin  (request: x, n, d, s, m, a, t, o)   -> verdict: r=1 identical, r=2 + st (a
                                                       different file, not overwritten),
                                                       r=0 go, r=-1 + e refused
    file_chunk  (x + payload bytes) ...             -> written to a temporary file
    file_end    (request: x, s)                     -> r=0 renamed into place, or r=-1 + e

A request with ``nd`` true (the sender addressed a `NodeLocation`) targets the receiver's
*node directory* (`FileTransfer.set_node_path`) instead of its ``dest_path``: the flag names
the target, never a path, and the same path rules apply under it; a receiver without a node
directory refuses it. Files received there are listed until `take_node_files`.

``x`` is a transfer id chosen by the sender; the receiver keys a transfer by (sender's sid,
x), so transfers from several peers, or several from one peer, are independent. A
``file_end`` without a request id is a notice, not a request: ``cancel`` (the sender gave
up) or ``refused`` (the receiver dropped the transfer mid-way, so the sender stops early).

The receiving side, with its invariants, is in `discoro.net.file_receiver`; this module is the
sending side and the path rules both share.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable, Callable
from itertools import count
from pathlib import Path, PurePath
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

from discoro.core.log import logger
from discoro.net.location import Location, NodeLocation
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
    """Mixin of `Network`: the sending side (`send_file`, `del_file`), `set_dest_path` and
    the node directory (`set_node_path`, `take_node_files`)."""

    _file_outbox: _Outbox | None = None
    _node_path: Path | None = None
    _node_files: list[Path] | None = None

    @property
    def node_path(self) -> Path | None:
        """Where files sent to this process's `NodeLocation` go (None: refused)."""
        return self._node_path

    _node_reserved: Callable[[PurePath], bool] | None = None

    def set_node_path(
        self,
        path: str | os.PathLike[str] | None,
        reserved: Callable[[PurePath], bool] | None = None,
    ) -> None:
        """Make ``path`` (made if missing) the node directory, or None for none.
        ``reserved(relative path)`` true: that path is the node's own, never written or
        deleted by a peer."""
        self._node_reserved = reserved
        if path is None:
            self._node_path = None
            return
        target = Path(path).resolve()
        target.mkdir(parents=True, exist_ok=True)
        self._node_path = target

    def node_reserved(self, relative: PurePath) -> bool:
        """Whether ``relative`` (a path under the node directory) is the node's own."""
        return self._node_reserved is not None and self._node_reserved(relative)

    def note_node_file(self, path: Path) -> None:
        """The receiving side wrote ``path`` into the node directory."""
        if self._node_files is None:
            self._node_files = []
        if path not in self._node_files:
            self._node_files.append(path)

    def take_node_files(self) -> list[Path]:
        """The files received into the node directory since the last call (to remove)."""
        files, self._node_files = self._node_files or [], None
        return files

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
            fields = {"n": _basename(file), "d": _relative_dir(dir), **_target(location)}
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
                begin = {"x": xid, "d": dir, "o": bool(overwrite), **info, **_target(location)}
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
                    cancel = Message("file_end", 0, {"x": xid, "cancel": "sender gave up"})
                    link.send(net.fences.tagged(cancel))


def _check_location(location: Any) -> None:
    if not isinstance(location, Location):
        raise _Refused(f"{location!r} is not a Location")


def _target(location: Location) -> dict[str, bool]:
    """The request field that names the receiver's node directory as the target."""
    return {"nd": True} if isinstance(location, NodeLocation) else {}


def _open_source(file: Any) -> tuple[IO[bytes], dict[str, Any]]:
    """The open file and what ``file_begin`` tells of it; _Refused unless readable+regular."""
    try:
        path = os.fspath(file)
        name = _basename(path)
        if not stat.S_ISREG(os.stat(path).st_mode):  # before open: a FIFO would block
            raise _Refused(f"{path!r} is not a regular file")
        source = open(path, "rb")  # noqa: SIM115 (closed by the caller's with)
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
        link.send(net.fences.tagged(Message("file_chunk", 0, {"x": xid}, data)))
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
