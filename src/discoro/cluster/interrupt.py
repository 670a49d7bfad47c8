"""Ctrl-C in a client: close its computations, then exit with status 130.

Rules:
- The first SIGINT in a process with an open computation (queued or current) closes every
  open computation (the scheduler terminates their remote coroutines and goes on to the
  next client), stops the kernel and exits with status 130. It logs a warning first.
- A second SIGINT while that runs exits at once, with status 130.
- With no open computation, SIGINT does what Python does by default (KeyboardInterrupt).

Python runs signal handlers in the main thread and lets only the main thread install them,
while computations are made and scheduled by coroutines on the kernel's thread. So `arm`
installs the handler whenever discoro's cluster layer is used from the main thread: when
`discoro.cluster.scheduler` is imported (the facade does that at the first use of any
``discoro.X``, in a program's main thread) and when a `Computation` is made there. It never
replaces a handler the program installed itself.

Exiting: where the main thread was stopped by the signal, ``SystemExit(130)`` unwinds it
(``finally`` blocks and atexit functions run); when the main thread is already inside the
kernel's exit hook (a program that fell off its end waits there for its coroutines),
raising is ignored by Python, so the process ends with ``os._exit(130)`` after flushing
stdout and stderr.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import weakref
from typing import TYPE_CHECKING

from discoro.core.kernel import AsynCoro
from discoro.core.log import logger

if TYPE_CHECKING:
    from types import FrameType

    from discoro.cluster.computation import Computation

EXIT_STATUS = 130  # 128 + SIGINT, as shells report an interrupted program
CLOSE_GRACE = 5.0  # seconds beyond the longest computation timeout for closing them all

_open: weakref.WeakSet[Computation] = weakref.WeakSet()  # computations queued or current
_interrupted = False


def opened(computation: Computation) -> None:
    """``computation`` is queued or current: the first SIGINT closes it."""
    _open.add(computation)


def closed(computation: Computation) -> None:
    _open.discard(computation)


def arm() -> None:
    """Install the handler, if this is the main thread and SIGINT has Python's default."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _on_interrupt)
    except (ValueError, OSError):  # not the main interpreter, or no signals here
        pass


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    global _interrupted
    if _interrupted:
        _exit_now()
    computations = list(_open)
    kernel = AsynCoro._existing_instance()
    if not computations or kernel is None:
        signal.default_int_handler(signum, frame)
        return
    _interrupted = True
    logger.warning(
        "interrupted: closing %d computation(s); interrupt again to exit at once",
        len(computations),
    )
    limit = max(float(c.timeout) for c in computations) + CLOSE_GRACE
    try:
        kernel.run_sync(_close_all(computations), limit)
    except Exception as exc:
        logger.warning("closing at the interrupt failed: %r", exc)
    try:
        kernel.terminate()
    except Exception as exc:
        logger.warning("stopping at the interrupt failed: %r", exc)
    if _in_exit_hook(frame):
        _exit_now()
    raise SystemExit(EXIT_STATUS)


async def _close_all(computations: list[Computation]) -> None:
    for computation in computations:
        try:
            await computation.close_now()  # terminates the jobs: close() would wait for them
        except Exception as exc:
            logger.warning("closing %s failed: %r", computation, exc)


def _in_exit_hook(frame: FrameType | None) -> bool:
    """Whether the main thread was stopped inside the kernel's atexit function."""
    exit_code = AsynCoro._at_interpreter_exit.__code__
    while frame is not None:
        if frame.f_code is exit_code:
            return True
        frame = frame.f_back
    return False


def _exit_now() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass
    os._exit(EXIT_STATUS)
