"""`AsyncPipe`: coroutines talk to one subprocess or a chain of them (reference 1.13).

``AsyncPipe(first, last=None)`` takes ``subprocess.Popen`` objects: ``first`` is where input
goes in, ``last`` (default ``first``) where output comes out, and the caller has wired the
processes between them (``Popen(..., stdin=first.stdout)``). Its ``stdin``/``stdout``/
``stderr`` are `AsyncFile`s (None where the process has no pipe); ``stderr`` is the last
process's, else the first's. Other attributes (``pid``, ``returncode``, ``wait``, ...) are the
last process's own (4.5.6), and ``poll()`` is the last process's exit status.

Invariants:
- ``communicate`` writes the input and reads both outputs at the same time, so a child that
  fills its output pipe before it has read all its input never deadlocks with us. It closes
  ``stdin`` when the input is written (the child sees end of file) and returns when both
  outputs reach end of file. If the child stops reading early, the unwritten rest of the
  input is dropped (a broken pipe is not an error), as ``Popen.communicate`` does.
- If the coroutine in ``communicate`` is terminated or interrupted, the helper tasks are
  cancelled, so no descriptor stays watched by the loop.
- ``communicate`` returns only after the first and the last process have exited and been
  reaped, so ``poll()`` right after it is their status, never None.
- ``close`` closes our ends of the pipes, and only them: it neither waits for nor kills the
  processes (a child that already exited is fine: closing never raises for that).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from typing import IO, Protocol

from discoro.core.asyncfile import CHUNK, AsyncFile, Writable, as_bytes
from discoro.core.childexit import exited


class Readable(Protocol):
    """A file object ``communicate`` copies to the input: ``read(n)`` gives bytes or str."""

    def read(self, size: int, /) -> bytes | str: ...


class Popen(subprocess.Popen[bytes]):
    """``subprocess.Popen`` for `AsyncPipe`. The original needed its own class on Windows to
    open overlapped pipes; on POSIX the standard pipes already serve, so this is the standard
    class under the name ported programs use."""


def pipe(bufsize: int = 8192) -> tuple[int, int]:
    """``(read_fd, write_fd)`` of a new pipe, for `AsyncFile` or a ``Popen`` argument (the
    original's Windows helper; ``bufsize`` is accepted and unused: the kernel sizes pipes)."""
    del bufsize
    return os.pipe()


def _wrap(stream: IO[bytes] | None) -> AsyncFile | None:
    return None if stream is None else AsyncFile(stream)


class AsyncPipe:
    """``AsyncPipe(first, last=None)``: non-blocking pipes to a ``Popen`` chain."""

    def __init__(
        self, first: subprocess.Popen[bytes], last: subprocess.Popen[bytes] | None = None
    ) -> None:
        self.first = first
        self.last = first if last is None else last
        self.stdin = _wrap(first.stdin)
        self.stdout = _wrap(self.last.stdout)
        self.stderr = _wrap(self.last.stderr if self.last.stderr is not None else first.stderr)

    @staticmethod
    def _need(stream: AsyncFile | None, name: str) -> AsyncFile:
        if stream is None:
            raise ValueError(f"the process has no {name} pipe (pass {name}=subprocess.PIPE)")
        return stream

    async def write(self, buf: Writable, full: bool = False, timeout: float | None = None) -> int:
        """Write to the first process's input; see `AsyncFile.write`."""
        return await self._need(self.stdin, "stdin").write(buf, full=full, timeout=timeout)

    async def read(self, size: int = 0, full: bool = False, timeout: float | None = None) -> bytes:
        """Read the last process's output; see `AsyncFile.read`."""
        return await self._need(self.stdout, "stdout").read(size, full=full, timeout=timeout)

    async def readline(
        self, size: int = 0, sizehint: int = 100, timeout: float | None = None
    ) -> bytes:
        """A line of the last process's output; see `AsyncFile.readline`."""
        stdout = self._need(self.stdout, "stdout")
        return await stdout.readline(size, sizehint=sizehint, timeout=timeout)

    async def read_stderr(
        self, size: int = 0, full: bool = False, timeout: float | None = None
    ) -> bytes:
        """Read the error output; see `AsyncFile.read`."""
        return await self._need(self.stderr, "stderr").read(size, full=full, timeout=timeout)

    async def readline_stderr(
        self, size: int = 0, sizehint: int = 100, timeout: float | None = None
    ) -> bytes:
        """A line of the error output; see `AsyncFile.readline`."""
        stderr = self._need(self.stderr, "stderr")
        return await stderr.readline(size, sizehint=sizehint, timeout=timeout)

    async def communicate(
        self, input: Writable | Readable | None = None
    ) -> tuple[bytes | None, bytes | None]:
        """Write ``input`` (bytes, str, or a file object to copy) and close ``stdin``, while
        reading ``stdout`` and ``stderr`` to their end; then wait for the first and the last
        process to exit (so ``poll()`` gives the status, as after ``Popen.communicate``).
        ``(stdout_data, stderr_data)``, None for a stream that is not a pipe."""
        if input is not None:
            self._need(self.stdin, "stdin")
        streams = [
            asyncio.ensure_future(self._feed(input)),
            asyncio.ensure_future(self._drain(self.stdout)),
            asyncio.ensure_future(self._drain(self.stderr)),
        ]
        exits: list[asyncio.Future[int]] = []
        try:
            _, out, err = await asyncio.gather(*streams)
            ends = dict.fromkeys((self.first, self.last))  # one process: wait once
            exits = [asyncio.ensure_future(exited(proc)) for proc in ends]
            await asyncio.gather(*exits)
        finally:
            for stream in streams:
                stream.cancel()
            for end in exits:
                end.cancel()
            if self.stdin is not None and not streams[0].done():
                # cut short (the caller was terminated): the child sees end of input now, not
                # when the cancelled feeder gets its turn (the loop may stop before that)
                self.stdin.close()
        return out, err

    async def _feed(self, source: Writable | Readable | None) -> None:
        stdin = self.stdin
        if stdin is None:
            return
        try:
            if source is None:
                pass
            elif isinstance(source, str | bytes | bytearray | memoryview):
                await stdin.write(as_bytes(source), full=True)
            else:
                while chunk := await asyncio.to_thread(source.read, CHUNK):
                    await stdin.write(as_bytes(chunk), full=True)
        except BrokenPipeError:
            pass  # the child stopped reading: the rest of the input is not wanted
        finally:
            stdin.close()

    @staticmethod
    async def _drain(stream: AsyncFile | None) -> bytes | None:
        if stream is None:
            return None
        return await stream.read()

    def poll(self) -> int | None:
        """The last process's exit status, None while it runs (``Popen.poll``)."""
        return self.last.poll()

    def close(self) -> None:
        """Close our ends of the pipes (the processes are left to run or end by themselves)."""
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def __enter__(self) -> AsyncPipe:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> AsyncPipe:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> object:
        if name in ("first", "last"):  # not set yet: __init__ failed early
            raise AttributeError(name)
        return getattr(self.last, name)
