"""`AsyncFile`: a pipe or socket read and written by coroutines without blocking (reference 1.13).

``AsyncFile(fd)`` takes a file object (a ``Popen``'s ``stdout``, a socket, ...) or a file
descriptor number and makes the descriptor non-blocking. ``read``, ``readline`` and ``write``
are blocking calls of the seed's kind: a generator coroutine ``yield``s them, an ``async def``
one ``await``s them, and plain asyncio code may ``await`` them too.

Invariants:
- Nothing here blocks the loop. A call tries the system call first; only when it would block
  does it wait for readiness with ``loop.add_reader``/``add_writer``, and the watch is removed
  when the wait ends, however it ends (data, timeout, ``close``, the coroutine terminated).
- ``timeout`` bounds the whole call (a deadline on the loop's clock). When it passes, the data
  transferred so far is the result; with none, ``TimeoutError('timedout')`` (an ``IOError``,
  as the original threw) is raised.
- Bytes read past a line end by ``readline`` stay in ``_buffer`` and are the first bytes of
  the next read: no byte is lost or reordered between the calls.
- One call at a time per direction (one reader, one writer); a second concurrent reader (or
  writer) gets ``RuntimeError`` instead of interleaving bytes unpredictably.
- ``close`` ends pending calls as end-of-file does (with the data they have), stops watching
  the descriptor before closing it (so a reused number is never watched by mistake), and is
  idempotent. Watches are only touched on their loop's thread: a ``close`` from another
  thread while a call waits is handed to that loop. Calls after ``close`` raise
  ``ValueError``, as Python's files do.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Protocol, TypeAlias

#: How much one system call asks for when the caller gave no size (or a line is sought).
CHUNK = 64 * 1024

_READ, _WRITE = "read", "write"


def _timed_out() -> TimeoutError:
    return TimeoutError("timedout")


#: What ``write`` takes: bytes-likes, and str (written as UTF-8).
Writable: TypeAlias = "str | bytes | bytearray | memoryview"


class FileLike(Protocol):
    """What `AsyncFile` wraps besides a bare descriptor: a file object or a socket."""

    def fileno(self) -> int: ...

    def close(self) -> None: ...


def _runs_in_this_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop runs in this thread
        return False


def as_bytes(data: Writable) -> bytes | memoryview:
    """``data`` as bytes to write: str is encoded as UTF-8, bytes-likes are viewed as bytes."""
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, bytes):
        return data
    return memoryview(data).cast("B")


class AsyncFile:
    """``AsyncFile(fd)``: non-blocking I/O on a pipe or socket (file object or fd number).

    Attributes this class does not define are the wrapped file object's own."""

    def __init__(self, fd: int | FileLike) -> None:
        self._file: FileLike | None = None if isinstance(fd, int) else fd
        self._fileno: int = fd if isinstance(fd, int) else fd.fileno()
        if isinstance(fd, socket.socket):
            fd.setblocking(False)
        else:
            os.set_blocking(self._fileno, False)
        self._buffer = bytearray()  # read but not yet returned (after a line end)
        self._closed = False
        # direction -> the future of the wait in progress, or None when a call is running
        # without waiting; a direction is absent when no call uses it
        self._busy: dict[str, asyncio.Future[bool] | None] = {}

    # -- waiting for readiness ----------------------------------------------------------

    def _begin(self, direction: str) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed AsyncFile")
        if direction in self._busy:
            raise RuntimeError(f"another {direction} on this AsyncFile is in progress")
        self._busy[direction] = None

    def _end(self, direction: str) -> None:
        self._busy.pop(direction, None)

    async def _ready(self, direction: str, deadline: float | None) -> bool:
        """Wait until the descriptor is ready for ``direction``: True; False when the
        deadline passed or the file was closed meanwhile."""
        loop = asyncio.get_running_loop()
        if deadline is not None and loop.time() >= deadline:
            return False
        future: asyncio.Future[bool] = loop.create_future()

        def settle(ready: bool) -> None:
            if not future.done():
                future.set_result(ready)

        watch, unwatch = (
            (loop.add_reader, loop.remove_reader)
            if direction == _READ
            else (loop.add_writer, loop.remove_writer)
        )
        watch(self._fileno, settle, True)
        timer = None if deadline is None else loop.call_at(deadline, settle, False)
        self._busy[direction] = future
        try:
            return await future and not self._closed
        finally:
            if timer is not None:
                timer.cancel()
            if not self._closed:  # close() has already stopped the watch
                unwatch(self._fileno)
                self._busy[direction] = None

    @staticmethod
    def _deadline(timeout: float | None) -> float | None:
        if timeout is None:
            return None
        return asyncio.get_running_loop().time() + max(timeout, 0.0)

    def _take(self, size: int) -> bytes:
        """Up to ``size`` buffered bytes (all of them when ``size`` <= 0)."""
        if size <= 0 or size >= len(self._buffer):
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
        return data

    async def _fill(self, count: int, deadline: float | None) -> bool | None:
        """Append up to ``count`` new bytes to the buffer: True if some came, False at end of
        file (or after close), None when the deadline passed first."""
        while True:
            try:
                chunk = os.read(self._fileno, count)
            except (BlockingIOError, InterruptedError):
                if not await self._ready(_READ, deadline):
                    return False if self._closed else None
                continue
            if not chunk:
                return False
            self._buffer += chunk
            return True

    # -- the seed's API -----------------------------------------------------------------

    async def read(self, size: int = 0, full: bool = False, timeout: float | None = None) -> bytes:
        """Up to ``size`` bytes, as soon as some are there; with ``full``, wait for all
        ``size`` (fewer only at end of file). ``size`` <= 0 reads to end of file."""
        self._begin(_READ)
        try:
            deadline = self._deadline(timeout)
            while True:
                have = len(self._buffer)
                if size > 0 and (have >= size or (have and not full)):
                    return self._take(size)
                want = CHUNK if size <= 0 else size - have
                got = await self._fill(want, deadline)
                if got is False:
                    return self._take(size)
                if got is None:
                    if self._buffer:
                        return self._take(size)
                    raise _timed_out()
        finally:
            self._end(_READ)

    async def readline(
        self, size: int = 0, sizehint: int = 100, timeout: float | None = None
    ) -> bytes:
        """The next line, with its ``b'\\n'``; at most ``size`` bytes when ``size`` > 0; the
        rest of the file at its end (``b''`` when nothing is left). ``sizehint`` is the
        least a single system call asks for."""
        buffer = self._buffer
        end = buffer.find(b"\n")
        if end >= 0 and (size <= 0 or end < size) and _READ not in self._busy and not self._closed:
            line = bytes(buffer[: end + 1])  # the common case: a whole line is buffered
            del buffer[: end + 1]
            return line
        self._begin(_READ)
        try:
            deadline = self._deadline(timeout)
            searched = 0  # the buffer's first bytes that hold no line end
            while True:
                end = self._buffer.find(b"\n", searched)
                if end >= 0 and (size <= 0 or end < size):
                    return self._take(end + 1)
                if size > 0 and len(self._buffer) >= size:
                    return self._take(size)
                searched = len(self._buffer)
                got = await self._fill(max(sizehint, CHUNK), deadline)
                if got is False:
                    return self._take(size)
                if got is None:
                    if self._buffer:
                        return self._take(size)
                    raise _timed_out()
        finally:
            self._end(_READ)

    async def write(self, buf: Writable, full: bool = False, timeout: float | None = None) -> int:
        """Write ``buf`` (bytes-like, or str as UTF-8): the number of bytes written. Without
        ``full`` one write (as much as the pipe takes at once); with it, all of ``buf``."""
        data = memoryview(as_bytes(buf))  # slices of a view copy nothing
        self._begin(_WRITE)
        try:
            deadline = self._deadline(timeout)
            written = 0
            while written < len(data):
                try:
                    written += os.write(self._fileno, data[written:])
                except (BlockingIOError, InterruptedError):
                    if await self._ready(_WRITE, deadline):
                        continue
                    if self._closed or written:
                        return written
                    raise _timed_out() from None
                if not full:
                    break
            return written
        finally:
            self._end(_WRITE)

    def fileno(self) -> int:
        return self._fileno

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the descriptor (through its file object, if one was given); pending calls
        end with what they have. From a thread other than the one of the loop a call waits
        on, the close is handed to that loop (and happens there, shortly after)."""
        if self._closed:
            return
        waiting = next((f for f in self._busy.values() if f is not None), None)
        if waiting is not None and not _runs_in_this_thread(waiting.get_loop()):
            waiting.get_loop().call_soon_threadsafe(self.close)
            return
        self._closed = True
        for direction, future in list(self._busy.items()):
            if future is None:
                continue
            loop = future.get_loop()
            if direction == _READ:
                loop.remove_reader(self._fileno)
            else:
                loop.remove_writer(self._fileno)
            if not future.done():
                future.set_result(False)
        if self._file is not None:
            self._file.close()
        else:
            os.close(self._fileno)

    def __enter__(self) -> AsyncFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> AsyncFile:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> object:
        wrapped = self.__dict__.get("_file")
        if wrapped is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(wrapped, name)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._fileno}"
        return f"<AsyncFile {state}>"
