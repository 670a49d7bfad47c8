"""Remote output: what a computation's coroutines print and log goes to its client.

While a computation with ``remote_output`` is installed on a server process, `OutputCapture`
replaces ``sys.stdout`` and ``sys.stderr`` with line-buffering writers and adds a logging
handler to the root logger (and to ``discoro.logger`` if a program stopped it propagating).
Captured text travels as `protocol.Output` messages to the computation's router coroutine
at the client, where `show_remote_output` writes each line, prefixed with the server
process's location, to the client's ``sys.stdout`` (what was printed) or ``sys.stderr``
(stderr and log records, with their level): never through the client's logger, so no log
level or logging configuration hides remote output.

Rules:
- Only output made on the kernel's loop thread while a coroutine other than the server's own
  (``is_internal``) runs is captured; everything else (the server's own logs, other threads)
  goes to the original streams as before. Sending is guarded: whatever the network layer
  prints or logs while an `Output` is being sent goes to the original streams, never back
  into the capture (no recursion).
- Order: one list of pending chunks keeps stdout, stderr and log records in the order they
  were made. Complete lines are sent in batches once per loop iteration (``call_soon``).
- Nothing is lost when a job ends: a job is a `Job`, whose end first flushes everything
  (partial lines too), so the output is sent before the job's `MonitorException`; messages
  from one process to another arrive in the order sent.
- `OutputCapture.close` flushes, then restores the streams and removes the handlers (only
  if they are still ours: a user who replaced ``sys.stdout`` again keeps theirs).
"""

from __future__ import annotations

import io
import logging
import sys
from typing import TYPE_CHECKING, Any, TextIO

from discoro.cluster import protocol as p
from discoro.core.coro import Coro
from discoro.core.kernel import AsynCoro
from discoro.core.log import BYPASS, mark_internal
from discoro.core.log import logger as discoro_logger

if TYPE_CHECKING:
    from collections.abc import Callable

STREAM_LEVELS = {"stdout": logging.INFO, "stderr": logging.WARNING}


class Job(Coro):
    """A job coroutine that calls ``on_end`` (e.g. flush its output) just before its
    monitors are told that it ended."""

    __slots__ = ("_on_end",)

    def __init__(
        self, on_end: Callable[[], None] | None, target: Any, *args: Any, **kwargs: Any
    ) -> None:
        self._on_end = on_end  # set before the coroutine can start (and end)
        super().__init__(target, *args, **kwargs)

    def _end(self, value: Any, exc_info: tuple[Any, ...] | None) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            try:
                on_end()
            except Exception:
                discoro_logger.debug("flushing the output of %s failed", self, exc_info=True)
        super()._end(value, exc_info)


class _CapturedStream(io.TextIOBase):
    """Stands in for ``sys.stdout``/``sys.stderr``: captured text goes to the capture, the
    rest to the original stream."""

    def __init__(self, capture: OutputCapture, name: str, original: TextIO) -> None:
        super().__init__()
        self._capture = capture
        self._name = name
        self.original = original
        setattr(self, BYPASS, original)  # discoro's fallback log handler writes there

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self._capture.accepts():
            self._capture.add(self._name, text, STREAM_LEVELS[self._name])
            return len(text)
        return self.original.write(text)

    def flush(self) -> None:
        self.original.flush()

    def fileno(self) -> int:
        return self.original.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")


class _CapturedLogs(logging.Handler):
    """Sends the log records made by a computation's coroutines to the capture."""

    def __init__(self, capture: OutputCapture) -> None:
        super().__init__()
        self._capture = capture
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        mark_internal(self)  # not the server program's logging (core/log.py)

    def emit(self, record: logging.LogRecord) -> None:
        if not self._capture.accepts():
            return
        try:
            self._capture.add("log", self.format(record) + "\n", record.levelno)
        except Exception:
            self.handleError(record)


class OutputCapture:
    """The capture of one installed computation (see the module notes)."""

    def __init__(
        self,
        kernel: AsynCoro,
        location: Any,
        uid: str,
        router: Any,
        is_internal: Callable[[Any], bool],
    ) -> None:
        self.kernel = kernel
        self.location = location
        self.uid = uid
        self.router = router
        self.is_internal = is_internal
        self._ready: list[tuple[str, int, str]] = []  # (stream, level, text), in order
        self._partial: dict[str, str] = {"stdout": "", "stderr": ""}
        self._scheduled = False
        self._sending = False
        self._open = False
        self._streams: dict[str, _CapturedStream] = {}
        self._handler = _CapturedLogs(self)
        self._loggers: list[logging.Logger] = []

    def install(self) -> None:
        self._loggers = [logging.getLogger()]
        if not discoro_logger.propagate:  # else the root's handler sees its records
            self._loggers.append(discoro_logger)
        self._streams = {
            "stdout": _CapturedStream(self, "stdout", sys.stdout),
            "stderr": _CapturedStream(self, "stderr", sys.stderr),
        }
        sys.stdout = self._streams["stdout"]
        sys.stderr = self._streams["stderr"]
        for log in self._loggers:
            log.addHandler(self._handler)
        self._open = True

    def close(self) -> None:
        """Send what is pending, then restore the streams and the loggers."""
        if not self._open:
            return
        self.flush(final=True)
        self._open = False
        for log in self._loggers:
            log.removeHandler(self._handler)
        if sys.stdout is self._streams["stdout"]:
            sys.stdout = self._streams["stdout"].original
        if sys.stderr is self._streams["stderr"]:
            sys.stderr = self._streams["stderr"].original

    def accepts(self) -> bool:
        """Whether output made now belongs to the computation (see the module notes)."""
        if not self._open or self._sending or not self.kernel.on_loop_thread():
            return False
        current = AsynCoro.cur_coro()
        return current is not None and not self.is_internal(current)

    def add(self, stream: str, text: str, level: int) -> None:
        if stream in self._partial:
            text = self._partial[stream] + text
            head, newline, tail = text.rpartition("\n")
            self._partial[stream] = tail
            if not newline:
                return
            text = head + newline
        self._ready.append((stream, level, text))
        if not self._scheduled:
            self._scheduled = True
            self.kernel.loop.call_soon(self._flush_lines)

    def _flush_lines(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self, final: bool = False) -> None:
        """Send the complete lines (``final``: partial lines too) as `Output` messages, one
        per run of chunks of the same stream and level."""
        if not self._open:
            return
        if final:
            for stream, text in self._partial.items():
                if text:
                    self._ready.append((stream, STREAM_LEVELS[stream], text))
                    self._partial[stream] = ""
        ready, self._ready = self._ready, []
        batches: list[tuple[str, int, list[str]]] = []
        for stream, level, text in ready:
            if batches and batches[-1][0] == stream and batches[-1][1] == level:
                batches[-1][2].append(text)
            else:
                batches.append((stream, level, [text]))
        self._sending = True
        try:
            for stream, level, texts in batches:
                self.router.send(p.Output(self.location, self.uid, stream, "".join(texts), level))
        except Exception:
            discoro_logger.debug("sending output of %s failed", self.uid, exc_info=True)
        finally:
            self._sending = False


def show_remote_output(location: object, stream: str, text: str, level: int) -> None:
    """Write the non-blank lines of remote output to this process's current ``sys.stdout``
    (``stream`` "stdout") or ``sys.stderr`` (the others; log records with their level
    name), each prefixed with ``[location]``."""
    target = sys.stdout if stream == "stdout" else sys.stderr
    if target is None:
        return
    tag = f"[{location}] " + (f"{logging.getLevelName(level)} " if stream == "log" else "")
    lines = [tag + line + "\n" for line in text.splitlines() if line.strip()]
    if lines:
        target.write("".join(lines))
        target.flush()
