"""The package logger, `discoro.logger` (the seed's `asyncoro.logger`), and its fallback
handler.

Rules (the library convention, with the reference's level):
- ``logging.getLogger("discoro")`` at level INFO (reference: examples call ``logger.info``
  and ``logger.setLevel(logging.DEBUG)`` and expect to see the lines). It propagates, so a
  program's ``logging.basicConfig`` (or any handler on the root logger) shows discoro's
  records like any other library's.
- Importing discoro configures nothing. At the first record discoro logs (or when a program
  calls `ensure_handler`, as the command-line programs do), if neither the root logger nor
  ``discoro`` has a handler, one `FallbackHandler` is added to ``discoro``: stderr, format
  ``%(asctime)s - %(name)s - %(message)s``. It stays silent for as long as the root logger
  has a handler of the program's, so a program that configures logging later never sees a
  line twice.
- discoro's own handlers on the root logger (a server's capture of remote output) are marked
  with `mark_internal` and do not count as the program's logging; the fallback handler writes
  past discoro's own stand-ins for ``sys.stderr`` (attribute `BYPASS`), so a record made
  in a remote coroutine reaches its client once, as a log record.
"""

from __future__ import annotations

import logging
import sys
from typing import cast

FORMAT = "%(asctime)s - %(name)s - %(message)s"


class Logger(logging.Logger):
    """The class of `logger`: a stdlib logger (the seed's) with the later versions' level
    constants (``Logger.DEBUG`` ... ``Logger.FATAL``, ``WARN``), ``warn``/``fatal`` and
    `show_ms`."""

    DEBUG = logging.DEBUG
    INFO = logging.INFO
    WARN = WARNING = logging.WARNING
    ERROR = logging.ERROR
    CRITICAL = FATAL = logging.CRITICAL

    milliseconds = True  # timestamps of the fallback handler show milliseconds

    def show_ms(self, flag: bool) -> None:
        """Whether the timestamps discoro's own handler writes show milliseconds."""
        type(self).milliseconds = bool(flag)

    def warn(self, msg: object, *args: object, **kwargs: object) -> None:
        """`warning` (the later versions' spelling, without the stdlib's deprecation)."""
        if self.isEnabledFor(logging.WARNING):
            self._log(logging.WARNING, msg, args, **kwargs)  # type: ignore[arg-type]


logger = cast("Logger", logging.getLogger("discoro"))
logger.__class__ = Logger
logger.setLevel(logging.INFO)


class _Formatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if Logger.milliseconds:
            return super().formatTime(record, datefmt)
        return super().formatTime(record, "%Y-%m-%d %H:%M:%S")


_INTERNAL = "_discoro_internal"
#: the attribute by which a stand-in for ``sys.stderr`` names the stream it stands in for
BYPASS = "discoro_original"


def mark_internal(handler: logging.Handler) -> logging.Handler:
    """Mark ``handler`` as discoro's own: it does not count as the program's logging."""
    setattr(handler, _INTERNAL, True)
    return handler


def program_configured_logging() -> bool:
    """Whether the root logger has a handler that is not discoro's own."""
    return any(not getattr(h, _INTERNAL, False) for h in logging.getLogger().handlers)


class FallbackHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in stubs
    """discoro's own handler for programs that set up no logging: writes to the current
    ``sys.stderr`` (looked up at each record, so a redirect made later is honoured), and
    defers to the root logger's handlers once there are any."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_Formatter(FORMAT))

    @property
    def stream(self) -> object:
        # a stand-in of discoro's own (a server's capture of remote output) is passed by:
        # the capture sends the record itself, once, as a log record
        return getattr(sys.stderr, BYPASS, sys.stderr)

    @stream.setter
    def stream(self, _value: object) -> None:
        pass  # always the current sys.stderr

    def emit(self, record: logging.LogRecord) -> None:
        if logger.propagate and program_configured_logging():
            return  # the program configured logging: its handlers show the record
        super().emit(record)


def ensure_handler() -> None:
    """Add the `FallbackHandler` if the program configured no logging (see the rules)."""
    if logger.handlers or program_configured_logging():
        return
    logger.addHandler(FallbackHandler())


class _FirstRecord(logging.Filter):
    """Checks for configured logging once, at discoro's first record."""

    checked = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.checked:
            self.checked = True
            ensure_handler()
        return True


logger.addFilter(_FirstRecord())
